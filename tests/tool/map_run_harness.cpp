#include "map_run_harness.hpp"

#include <fcntl.h>         // pipe2, fcntl
#include <poll.h>          // poll
#include <signal.h>        // SIGKILL, SIGPIPE
#include <spawn.h>         // posix_spawn
#include <sys/resource.h>  // struct rusage: the peak RSS
#include <sys/syscall.h>   // SYS_pidfd_open, SYS_pidfd_send_signal
#include <sys/wait.h>      // waitid, wait4
#include <unistd.h>        // close, read, write

#include <algorithm>  // std::sort, std::count
#include <cerrno>     // errno
#include <chrono>     // the deadline
#include <cstring>    // std::strerror
#include <string>     // inputs and outputs
#include <vector>     // argv

extern char** environ;

namespace procpool::map_test {
namespace {

void close_fd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

}  // namespace

std::string worker(const std::string& name) {
  return std::string(PROCPOOL_TEST_WORKER_DIR) + "/procpool-worker-" + name;
}

std::vector<std::string> environment_with(const std::vector<std::string>& entries) {
  // getenv reads the first entry of a name: an inherited one would hide ours.
  auto replaced = [&](std::string_view entry) {
    const std::string_view name = entry.substr(0, entry.find('='));
    for (const std::string& ours : entries) {
      if (std::string_view(ours).substr(0, ours.find('=')) == name) return true;
    }
    return false;
  };
  std::vector<std::string> environment;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    if (!replaced(*entry)) environment.emplace_back(*entry);
  }
  environment.insert(environment.end(), entries.begin(), entries.end());
  return environment;
}

Result run_procpool(const std::vector<std::string>& args, const std::string& input,
                    RunOptions options) {
  std::vector<std::string> argv_text = {PROCPOOL_BINARY};
  argv_text.insert(argv_text.end(), args.begin(), args.end());
  return run_program(argv_text, input, std::move(options));
}

Result run_program(std::vector<std::string> argv_text, const std::string& input,
                   RunOptions options) {
  Result run;
  int in[2], out[2], err[2];
  if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) {
    ADD_FAILURE() << "pipe2: " << std::strerror(errno);
    return run;
  }
  std::vector<char*> argv;
  for (std::string& arg : argv_text) argv.push_back(arg.data());
  argv.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in[0], 0);  // dup2 clears close-on-exec
  if (options.stdout_is == "closed") {
    posix_spawn_file_actions_addclose(&actions, 1);
  } else if (options.stdout_is == "read-only") {
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_RDONLY, 0);
  } else if (options.stdout_is == "full") {
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/full", O_WRONLY, 0);
  } else {
    posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  }
  posix_spawn_file_actions_adddup2(&actions, err[1], 2);
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  sigset_t defaults;
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGPIPE);  // ours is ignored; the child starts with the default
  posix_spawnattr_setsigdefault(&attributes, &defaults);
  posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGDEF);
  std::vector<std::string> environment = environment_with(options.env);
  std::vector<char*> envp;
  for (std::string& entry : environment) envp.push_back(entry.data());
  envp.push_back(nullptr);
  pid_t pid = -1;
  const int spawned = ::posix_spawn(&pid, argv[0], &actions, &attributes, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attributes);
  ::close(in[0]);
  ::close(out[1]);
  ::close(err[1]);
  int in_fd = in[1], out_fd = out[0], err_fd = err[0];
  if (spawned != 0) {
    ADD_FAILURE() << "posix_spawn " << argv[0] << ": " << std::strerror(spawned);
    close_fd(in_fd);
    close_fd(out_fd);
    close_fd(err_fd);
    return run;
  }
  int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (options.on_started) options.on_started(pid);
  if (options.close_stdout) close_fd(out_fd);
  for (int fd : {in_fd, out_fd, err_fd}) {
    if (fd >= 0) ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  }

  std::string feed = input;
  std::size_t written = 0;
  auto next_chunk = [&] {
    if (!options.more_input) return;
    feed = options.more_input();
    written = 0;
  };
  if (feed.empty()) next_chunk();
  if (feed.empty()) close_fd(in_fd);
  bool exited = false;
  int status = 0;
  const auto deadline = Clock::now() + options.deadline;
  Clock::time_point signalled_at{};
  char buffer[65536];
  while (in_fd >= 0 || out_fd >= 0 || err_fd >= 0 || !exited) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      run.timed_out = true;
      break;
    }
    pollfd fds[4];
    int count = 0;
    auto watch = [&](int fd, short events) { fds[count++] = pollfd{fd, events, 0}; };
    if (in_fd >= 0 && written < feed.size()) watch(in_fd, POLLOUT);
    if (out_fd >= 0) watch(out_fd, POLLIN);
    if (err_fd >= 0) watch(err_fd, POLLIN);
    if (!exited && pidfd >= 0) watch(pidfd, POLLIN);
    const int ready = count == 0 ? 0
                                 : ::poll(fds, static_cast<nfds_t>(count),
                                          static_cast<int>(std::min<long>(left.count(), 100)));
    if (ready < 0 && errno != EINTR) {
      ADD_FAILURE() << "poll: " << std::strerror(errno);
      break;
    }
    for (int i = 0; i < count && ready > 0; ++i) {
      if (fds[i].revents == 0) continue;
      if (fds[i].fd == in_fd) {
        const ssize_t n = ::write(in_fd, feed.data() + written, feed.size() - written);
        if (n > 0) written += static_cast<std::size_t>(n);
        if (n > 0 && written == feed.size()) next_chunk();
        if ((n < 0 && errno != EAGAIN) ||
            (written == feed.size() && options.hold_stdin_until_output.empty() &&
             !options.keep_stdin_open)) {
          close_fd(in_fd);
        }
      } else if (fds[i].fd == out_fd || fds[i].fd == err_fd) {
        const bool is_out = fds[i].fd == out_fd;
        const ssize_t n = ::read(fds[i].fd, buffer, sizeof buffer);
        if (n > 0) {
          if (is_out) run.out_bytes += static_cast<std::size_t>(n);
          if (!is_out || options.keep_stdout) {
            (is_out ? run.out : run.err).append(buffer, static_cast<std::size_t>(n));
          }
          if (is_out && options.close_stdout_after_lines != 0 &&
              static_cast<std::size_t>(std::count(run.out.begin(), run.out.end(), '\n')) >=
                  options.close_stdout_after_lines) {
            close_fd(out_fd);
          }
        } else if (n == 0 || errno != EAGAIN) {
          close_fd(is_out ? out_fd : err_fd);
        }
      }
    }
    if (in_fd >= 0 && written == feed.size() && !options.hold_stdin_until_output.empty() &&
        run.out.find(options.hold_stdin_until_output) != std::string::npos) {
      close_fd(in_fd);
    }
    if (!exited && run.signals_sent < options.signals.size()) {
      const SignalStep& step = options.signals[run.signals_sent];
      const auto lines = static_cast<std::size_t>(std::count(run.out.begin(), run.out.end(), '\n'));
      if (lines >= step.after_output_lines &&
          (step.after_error_text.empty() ||
           run.err.find(step.after_error_text) != std::string::npos)) {
        if (pidfd >= 0) {
          ::syscall(SYS_pidfd_send_signal, pidfd, step.signal, nullptr, 0);
        } else {
          ::kill(pid, step.signal);
        }
        ++run.signals_sent;
        signalled_at = Clock::now();
      }
    }
    // The exit: through the pidfd, or (no pidfd) by polling waitid each round; seen first
    // without reaping, so that before_reap runs while the pid is still procpool's.
    siginfo_t info{};
    struct rusage usage {};
    if (!exited &&
        ::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
        info.si_pid == pid) {
      if (options.before_reap) options.before_reap();
      ::wait4(pid, &status, 0, &usage);
      run.max_rss_kb = usage.ru_maxrss;
      exited = true;
      if (run.signals_sent != 0) {
        run.exit_after_signal =
            std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - signalled_at);
      }
    }
    if (exited && options.keep_stdin_open) close_fd(in_fd);
  }
  if (!exited) {
    if (pidfd >= 0) {
      ::syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, nullptr, 0);
    } else {
      ::kill(pid, SIGKILL);
    }
    if (options.before_reap) options.before_reap();
    ::waitpid(pid, &status, 0);
    run.timed_out = true;
  }
  close_fd(in_fd);
  close_fd(out_fd);
  close_fd(err_fd);
  close_fd(pidfd);
  if (WIFEXITED(status)) run.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) run.signal = WTERMSIG(status);
  return run;
}

std::string numbers(std::uint64_t from, std::uint64_t to) {
  std::string text;
  for (std::uint64_t i = from; i <= to; ++i) text += std::to_string(i) + "\n";
  return text;
}

std::vector<std::string> sorted_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::size_t begin = 0;
  while (begin < text.size()) {
    const std::size_t end = text.find('\n', begin);
    lines.push_back(text.substr(begin, end - begin));
    if (end == std::string::npos) break;
    begin = end + 1;
  }
  std::sort(lines.begin(), lines.end());
  return lines;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::size_t begin = 0;
  while (begin < text.size()) {
    const std::size_t end = text.find('\n', begin);
    if (end == std::string::npos) {
      lines.push_back(text.substr(begin));
      break;
    }
    lines.push_back(text.substr(begin, end - begin));
    begin = end + 1;
  }
  return lines;
}

std::string repeat_line(const std::string& line, std::size_t times) {
  std::string text;
  for (std::size_t i = 0; i < times; ++i) text += line + "\n";
  return text;
}

NotCompleted parse_not_completed(const std::string& err) {
  NotCompleted result;
  const std::string marker = "procpool map: not completed: ";
  const std::size_t at = err.find(marker);
  if (at == std::string::npos) return result;
  result.reported = true;
  std::string list = err.substr(at + marker.size(), err.find('\n', at) - at - marker.size());
  for (const char* prefix : {"lines ", "line "}) {
    if (list.starts_with(prefix)) {
      list.erase(0, std::strlen(prefix));
      break;
    }
  }
  std::size_t begin = 0;
  while (begin < list.size()) {
    std::size_t end = list.find(", ", begin);
    if (end == std::string::npos) end = list.size();
    const std::string item = list.substr(begin, end - begin);
    const std::size_t dash = item.find('-');
    const std::uint64_t first = std::stoull(item.substr(0, dash));
    if (dash == std::string::npos) {
      result.lines.insert(first);
    } else if (dash + 1 == item.size()) {
      result.rest_from = first;
    } else {
      for (std::uint64_t line = first; line <= std::stoull(item.substr(dash + 1)); ++line) {
        result.lines.insert(line);
      }
    }
    begin = end + 2;
  }
  return result;
}

void expect_messages_start_lines(const std::string& err, const std::string& message) {
  for (std::size_t at = err.find(message); at != std::string::npos;
       at = err.find(message, at + 1)) {
    EXPECT_TRUE(at == 0 || err[at - 1] == '\n') << "'" << message << "' not at a line start:\n"
                                                << err;
  }
}

std::vector<std::string> sleep_run(const std::vector<std::string>& options) {
  std::vector<std::string> args = {"map", "--workers", "2", "--handler", "sleep"};
  args.insert(args.end(), options.begin(), options.end());
  args.insert(args.end(), {"--", worker("crashy")});
  return args;
}

}  // namespace procpool::map_test
