// `procpool map`, driven as a user drives it: each test spawns the built binary with its stdin,
// stdout and stderr on pipes, feeds the input while collecting both outputs (poll, never a
// sleep), and waits for the exit through a pidfd, all under one deadline. A run that overstays
// is SIGKILLed and reaped, so a hung binary fails its test instead of hanging the suite. The
// interruption tests send SIGINT/SIGTERM when the run reaches a point they can see (so many
// result lines on stdout, a message on stderr), never after a sleep.

#include <dirent.h>        // opendir: a process's threads
#include <fcntl.h>         // pipe2, fcntl
#include <poll.h>          // poll
#include <signal.h>        // SIGKILL, SIGPIPE
#include <spawn.h>         // posix_spawn
#include <sys/resource.h>  // struct rusage: the peak RSS
#include <sys/syscall.h>   // SYS_pidfd_open, SYS_pidfd_send_signal
#include <sys/wait.h>      // waitid, wait4
#include <unistd.h>        // close, read, write

#include <algorithm>           // std::sort, std::count
#include <atomic>              // the killer's count
#include <cerrno>              // errno
#include <chrono>              // the deadline
#include <condition_variable>  // the killer's pause, cut short by stop()
#include <cstdio>              // std::printf: the chaos run's figures
#include <cstring>             // std::strerror
#include <fstream>             // /proc files
#include <functional>          // RunOptions' hooks
#include <iterator>            // std::istreambuf_iterator
#include <mutex>               // the killer's stop flag
#include <optional>            // a killer started with the run
#include <random>              // which worker, how long a pause
#include <set>                 // line numbers
#include <string>              // inputs and outputs
#include <thread>              // the killer
#include <vector>              // argv

#include <gtest/gtest.h>

#include "../common/test_timing.hpp"  // kTimingScale

extern char** environ;

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

std::string worker(const std::string& name) {
  return std::string(PROCPOOL_TEST_WORKER_DIR) + "/procpool-worker-" + name;
}

struct Result {
  int exit_code = -1;  // the exit status, or -1 if it did not exit normally
  int signal = 0;      // the terminating signal, if any
  bool timed_out = false;
  std::string out, err;
  std::size_t out_bytes = 0;  // all of stdout, also when it is not kept (RunOptions::keep_stdout)
  long max_rss_kb = 0;        // the peak resident set size of procpool (and its reaped workers)
  std::size_t signals_sent = 0;
  // From the last signal sent to the exit seen.
  std::chrono::milliseconds exit_after_signal{-1};
};

// A signal for the test to send once the run got this far: stdout holds at least
// `after_output_lines` lines and stderr contains `after_error_text` (if not empty).
struct SignalStep {
  int signal = SIGINT;
  std::size_t after_output_lines = 0;
  std::string after_error_text;
};

struct RunOptions {
  std::chrono::milliseconds deadline = 60s;
  bool close_stdout = false;  // the reader of stdout is gone before the run starts
  // The reader of stdout goes away once it has read this many lines (0 = never).
  std::size_t close_stdout_after_lines = 0;
  // What procpool gets as its fd 1 instead of the pipe: "closed", "read-only" (/dev/null opened
  // O_RDONLY) or "full" (/dev/full: every write fails ENOSPC).
  std::string stdout_is;
  bool keep_stdout = true;  // false: stdout is counted (out_bytes), not kept in `out`
  // If set, stdin stays open after the input is written until this shows up on stdout.
  std::string hold_stdin_until_output;
  // Stdin stays open until the run exits: the input never ends.
  bool keep_stdin_open = false;
  std::vector<SignalStep> signals;  // sent in order, each once its condition holds
  // Once the input given is written, the next chunk to write; an empty chunk ends the input.
  std::function<std::string()> more_input;
  // Called with procpool's pid once it runs, and before it is reaped (then the pid may be
  // reused): what a test does to the process in between.
  std::function<void(pid_t)> on_started;
  std::function<void()> before_reap;
};

void close_fd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

// Runs `procpool ARGS...` with `input` on stdin; returns when it has exited and both of its
// outputs are closed, or at the deadline (then it is killed).
Result run_procpool(const std::vector<std::string>& args, const std::string& input = "",
                    RunOptions options = {}) {
  Result run;
  int in[2], out[2], err[2];
  if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) {
    ADD_FAILURE() << "pipe2: " << std::strerror(errno);
    return run;
  }
  std::vector<std::string> argv_text = {PROCPOOL_BINARY};
  argv_text.insert(argv_text.end(), args.begin(), args.end());
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
  pid_t pid = -1;
  const int spawned = ::posix_spawn(&pid, argv[0], &actions, &attributes, argv.data(), environ);
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

std::string numbers(std::uint64_t from, std::uint64_t to) {  // "from\n...to\n"
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

// What an interrupted run reported on stderr as not completed:
//   procpool map: not completed: lines 3-5, 9, 12-
struct NotCompleted {
  bool reported = false;
  std::set<std::uint64_t> lines;  // from the closed ranges, counted from 1
  std::uint64_t rest_from = 0;    // N of a final "N-" (line N and after), or 0
};

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

// Every message of procpool map's own on stderr starts a line, even with a progress line (which
// ends with spaces, not a newline, when stderr is not a terminal) in between.
void expect_messages_start_lines(const std::string& err, const std::string& message) {
  for (std::size_t at = err.find(message); at != std::string::npos;
       at = err.find(message, at + 1)) {
    EXPECT_TRUE(at == 0 || err[at - 1] == '\n') << "'" << message << "' not at a line start:\n"
                                                << err;
  }
}

class MapTest : public ::testing::Test {
 protected:
  // Writing to a procpool that already exited must fail with EPIPE, not kill the test.
  static void SetUpTestSuite() { ::signal(SIGPIPE, SIG_IGN); }
};

#define EXPECT_EXIT_CODE(run, code)                                                \
  do {                                                                             \
    EXPECT_FALSE((run).timed_out) << "stderr: " << (run).err;                      \
    EXPECT_EQ((run).exit_code, (code))                                             \
        << "signal " << (run).signal << ", stderr: " << (run).err.substr(0, 4000); \
  } while (0)

// --- results ---

TEST_F(MapTest, KeepsInputOrderFor100000Lines) {
  const Result run =
      run_procpool({"map", "--workers", "2", "--", worker("increment")}, numbers(0, 99'999));
  EXPECT_EXIT_CODE(run, 0);
  EXPECT_TRUE(run.out == numbers(1, 100'000)) << "output differs (" << run.out.size() << " bytes)";
  EXPECT_EQ(run.err, "");
}

TEST_F(MapTest, UnorderedWritesTheSameResultsInSomeOrder) {
  const Result run = run_procpool(
      {"map", "--workers", "2", "--unordered", "--", worker("increment")}, numbers(0, 99'999));
  EXPECT_EXIT_CODE(run, 0);
  EXPECT_TRUE(sorted_lines(run.out) == sorted_lines(numbers(1, 100'000)));
}

TEST_F(MapTest, ProcessesALastLineWithoutNewline) {
  const Result run = run_procpool({"map", "--", worker("increment")}, "1\n2\n41");
  EXPECT_EXIT_CODE(run, 0);
  EXPECT_EQ(run.out, "2\n3\n42\n");
}

// A result is written while the input is still open: output is not held back until more
// input or the end of input arrives.
TEST_F(MapTest, WritesResultsBeforeTheInputEnds) {
  RunOptions options;
  options.hold_stdin_until_output = "2\n3\n";
  options.deadline = 20s;
  const Result run = run_procpool({"map", "--", worker("increment")}, "1\n2\n", options);
  EXPECT_EXIT_CODE(run, 0);
  EXPECT_EQ(run.out, "2\n3\n");
}

TEST_F(MapTest, EmptyInputGivesEmptyOutputAndSuccess) {
  const Result run = run_procpool({"map", "--", worker("increment")}, "");
  EXPECT_EXIT_CODE(run, 0);
  EXPECT_EQ(run.out, "");
  EXPECT_EQ(run.err, "");
}

TEST_F(MapTest, EmptyLinesAreTasksToo) {
  const Result run = run_procpool({"map", "--handler", "echo", "--", worker("crashy")}, "a\n\nb\n");
  EXPECT_EXIT_CODE(run, 0);
  EXPECT_EQ(run.out, "a\n\nb\n");
}

TEST_F(MapTest, PassesWorkerArguments) {
  // crashy reads its own argv: this one exits before READY, so the pool cannot start.
  const Result run =
      run_procpool({"map", "--", worker("crashy"), "--exit-before-ready", "3"}, "1\n");
  EXPECT_EXIT_CODE(run, 2);
  EXPECT_NE(run.err.find("exit code 3"), std::string::npos) << run.err;
  EXPECT_EQ(run.out, "");
}

// --- failures ---

TEST_F(MapTest, FailingLineIsReportedAndTheOthersStillWritten) {
  const Result run = run_procpool({"map", "--", worker("increment")}, "1\nnot a number\n3\n");
  EXPECT_EXIT_CODE(run, 1);
  EXPECT_EQ(run.out, "2\n4\n");  // nothing at all for the failed line
  EXPECT_NE(run.err.find("procpool map: line 2: HandlerError: increment: not an unsigned integer"),
            std::string::npos)
      << run.err;
}

TEST_F(MapTest, ThrowingHandlerFailsEveryLineWithItsMessage) {
  const Result run =
      run_procpool({"map", "--handler", "throw", "--", worker("crashy")}, "first\nsecond\n");
  EXPECT_EXIT_CODE(run, 1);
  EXPECT_EQ(run.out, "");
  EXPECT_NE(run.err.find("line 1: HandlerError: first"), std::string::npos) << run.err;
  EXPECT_NE(run.err.find("line 2: HandlerError: second"), std::string::npos) << run.err;
}

TEST_F(MapTest, TimeoutFailsHungTasks) {
  const Result run = run_procpool(
      {"map", "--timeout", "200ms", "--handler", "hang", "--", worker("crashy")}, "1\n2\n");
  EXPECT_EXIT_CODE(run, 1);
  EXPECT_NE(run.err.find("line 1: Timeout"), std::string::npos) << run.err;
  EXPECT_NE(run.err.find("line 2: Timeout"), std::string::npos) << run.err;
}

// One line per worker: each crashes its worker once, then succeeds on its retry.
TEST_F(MapTest, RetriesRecoverTasksWhoseWorkerCrashed) {
  const Result run = run_procpool({"map", "--workers", "2", "--retries", "1", "--handler",
                                   "crash_on_first_attempt", "--", worker("crashy")},
                                  "a\nb\n");
  EXPECT_EXIT_CODE(run, 0);
  EXPECT_EQ(run.out, "a\nb\n");
}

// Several lines on one worker, so a finished task and the crashing one are on board together;
// every line crashes a worker once, which its task is charged for (not a crash loop). Fails
// while the pool blames the first unanswered task for a crash:
// the worker publishes results in batches, so the retried line 1, finished on the second
// worker but its result not yet published when line 2 crashes that worker, is blamed and
// reported as poison.
TEST_F(MapTest, RetriesRecoverCrashesWithSeveralTasksOnBoard) {
  const Result run = run_procpool({"map", "--workers", "1", "--retries", "1", "--handler",
                                   "crash_on_first_attempt", "--", worker("crashy")},
                                  numbers(1, 100));
  EXPECT_EXIT_CODE(run, 0);
  EXPECT_EQ(run.out, numbers(1, 100));
}

TEST_F(MapTest, WithoutRetriesACrashFailsTheLine) {
  const Result run = run_procpool(
      {"map", "--workers", "1", "--handler", "crash_on_first_attempt", "--", worker("crashy")},
      "a\n");
  EXPECT_EXIT_CODE(run, 1);
  EXPECT_NE(run.err.find("line 1: WorkerCrashed"), std::string::npos) << run.err;
}

TEST_F(MapTest, ClosedStdoutExitsWithStatus1) {
  RunOptions options;
  options.close_stdout = true;
  const Result run = run_procpool({"map", "--", worker("increment")}, numbers(1, 200'000), options);
  EXPECT_EXIT_CODE(run, 1);
  EXPECT_NE(run.err.find("cannot write standard output"), std::string::npos) << run.err;
}

// The summary of a run that stopped because standard output failed: the results written and
// the lines not completed (counted from 1), which must add up to every line.
struct OutputFailure {
  bool reported = false;
  std::uint64_t written = 0;
  NotCompleted missing;
};

OutputFailure parse_output_failure(const std::string& err, const std::string& reason) {
  OutputFailure result;
  const std::string marker = "procpool map: stopped, standard output failed (" + reason + "): ";
  const std::size_t at = err.find(marker);
  if (at == std::string::npos) return result;
  result.reported = true;
  std::string count = err.substr(at + marker.size());
  count.resize(count.find(" "));
  std::erase(count, ',');  // "1,234"
  result.written = std::stoull(count);
  result.missing = parse_not_completed(err);
  return result;
}

// The reader of stdout reads some results, then goes: the run stops with status 1, says so, and
// accounts for every line: results written first, then the lines not completed, to run again.
TEST_F(MapTest, BrokenPipeStopsTheRunAndNamesTheLinesNotWritten) {
  RunOptions options;
  options.close_stdout_after_lines = 1000;
  const Result run = run_procpool({"map", "--", worker("increment")}, numbers(0, 199'999), options);
  EXPECT_EXIT_CODE(run, 1);
  EXPECT_NE(run.err.find("procpool map: cannot write standard output: Broken pipe"),
            std::string::npos)
      << run.err.substr(0, 4000);
  const OutputFailure failure = parse_output_failure(run.err, "Broken pipe");
  ASSERT_TRUE(failure.reported) << run.err.substr(0, 4000);
  EXPECT_GE(failure.written, 1000u) << run.err.substr(0, 4000);
  EXPECT_TRUE(run.out.starts_with(numbers(1, 1000))) << run.out.substr(0, 100);
  // In input order: the first `written` lines got out; the rest is named, from the next one.
  EXPECT_TRUE(failure.missing.lines.empty()) << run.err.substr(0, 4000);
  EXPECT_EQ(failure.missing.rest_from, failure.written + 1) << run.err.substr(0, 4000);
}

// /dev/full: every write fails ENOSPC. Nothing was written, and every line is named.
TEST_F(MapTest, FullDiskStopsTheRunAndNamesEveryLine) {
  RunOptions options;
  options.stdout_is = "full";
  const Result run = run_procpool({"map", "--", worker("increment")}, numbers(1, 200'000), options);
  EXPECT_EXIT_CODE(run, 1);
  EXPECT_NE(run.err.find("procpool map: cannot write standard output: No space left on device"),
            std::string::npos)
      << run.err;
  const OutputFailure failure = parse_output_failure(run.err, "No space left on device");
  ASSERT_TRUE(failure.reported) << run.err;
  EXPECT_EQ(failure.written, 0u) << run.err;
  EXPECT_TRUE(failure.missing.lines.empty()) << run.err;
  EXPECT_EQ(failure.missing.rest_from, 1u) << run.err;
}

// `procpool map ... >&-`: the results would go nowhere. Refused before any line is read.
TEST_F(MapTest, ClosedOrReadOnlyStdoutIsRefusedWithStatus2) {
  for (const char* stdout_is : {"closed", "read-only"}) {
    RunOptions options;
    options.stdout_is = stdout_is;
    const Result run = run_procpool({"map", "--", worker("increment")}, numbers(1, 1000), options);
    EXPECT_EXIT_CODE(run, 2);
    EXPECT_NE(run.err.find("procpool map: standard output is "), std::string::npos)
        << stdout_is << ": " << run.err;
  }
}

// --empty-on-failure: each failed line leaves an empty line in its place, so output line N is
// input line N's result; the failures are reported as usual.
TEST_F(MapTest, EmptyOnFailureKeepsOutputAlignedWithInput) {
  const Result run = run_procpool({"map", "--empty-on-failure", "--", worker("increment")},
                                  "1\nnot a number\n3\nx\n5\n");
  EXPECT_EXIT_CODE(run, 1);
  EXPECT_EQ(run.out, "2\n\n4\n\n6\n");
  EXPECT_NE(run.err.find("procpool map: line 2: HandlerError: "), std::string::npos) << run.err;
  EXPECT_NE(run.err.find("procpool map: line 4: HandlerError: "), std::string::npos) << run.err;
}

// Ordered output behind one slow line (3 s): the 1 MiB results of the 700 lines after it wait
// for it. What piles up must stay within map's pending-results budget (256 MiB), not grow with
// the input. Sanitizer runtimes hold freed memory back (quarantine, shadow), so the peak says
// nothing about map there.
TEST_F(MapTest, ResultsWaitingBehindASlowLineStayWithinTheBudget) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "the peak RSS under a sanitizer is the runtime's";
#endif
  constexpr std::size_t kResult = 1 << 20;
  constexpr std::size_t kLines = 700;
  RunOptions options;
  options.keep_stdout = false;
  const Result run =
      run_procpool({"map", "--workers", "2", "--handler", "fill", "--", worker("crashy")},
                   "1048576 3000\n" + repeat_line("1048576", kLines), options);
  EXPECT_EXIT_CODE(run, 0);
  EXPECT_EQ(run.out_bytes, (kLines + 1) * (kResult + 1));
  // The budget, and room for the program itself and one batch of results in transit.
  EXPECT_LT(run.max_rss_kb, (256 + 96) * 1024) << "peak RSS " << run.max_rss_kb / 1024 << " MiB";
}

// 9 crashing ("poison") lines spread over 200,000, with default options: each fails as a
// WorkerCrashed line of its own, and every other line is processed, in order. A death while a
// task runs is charged to that task, never counted as a crash loop that ends the pool.
TEST_F(MapTest, PoisonLinesFailAloneAndEveryOtherLineIsProcessed) {
  constexpr std::uint64_t kLines = 200'000, kEvery = 20'000;
  std::string input, expected;
  std::set<std::uint64_t> poison;  // counted from 1
  for (std::uint64_t line = 1; line <= kLines; ++line) {
    if (line % kEvery == 0 && line < kLines) {
      poison.insert(line);
      input += "poison\n";
    } else {
      input += std::to_string(line) + "\n";
      expected += std::to_string(line) + "\n";
    }
  }
  ASSERT_EQ(poison.size(), 9u);
  const Result run =
      run_procpool({"map", "--handler", "poison", "--", worker("crashy")}, input, RunOptions{});
  EXPECT_EXIT_CODE(run, 1);  // some task failed
  EXPECT_TRUE(run.out == expected) << run.out.size() << " bytes written, " << expected.size()
                                   << " expected; stderr: " << run.err.substr(0, 4000);
  for (const std::uint64_t line : poison) {
    EXPECT_NE(run.err.find("procpool map: line " + std::to_string(line) + ": WorkerCrashed: "),
              std::string::npos)
        << line << ": " << run.err.substr(0, 4000);
  }
  EXPECT_EQ(run.err.find("stopped ("), std::string::npos) << run.err.substr(0, 4000);
}

// The worker processes of `procpool map` (pid): its children, which are listed per thread, since
// the pool's supervisor thread spawns them. Zombies (killed, not yet reaped) are left out.
std::vector<pid_t> live_children_of(pid_t pid) {
  std::vector<pid_t> children;
  const std::string tasks = "/proc/" + std::to_string(pid) + "/task";
  DIR* directory = ::opendir(tasks.c_str());
  if (directory == nullptr) return children;
  while (const dirent* entry = ::readdir(directory)) {
    if (entry->d_name[0] == '.') continue;
    std::ifstream list(tasks + "/" + entry->d_name + "/children");
    for (pid_t child = 0; list >> child;) {
      std::ifstream stat("/proc/" + std::to_string(child) + "/stat");
      std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
      const std::size_t name_end = text.rfind(')');
      if (name_end != std::string::npos && name_end + 2 < text.size() &&
          text[name_end + 2] != 'Z') {
        children.push_back(child);
      }
    }
  }
  ::closedir(directory);
  return children;
}

// SIGKILLs a random live worker of one `procpool map` run every 100-250 ms until stopped. A
// pid is signalled through a pidfd opened while it was listed, and only if it is still listed
// after: a worker that exited and was reaped in between cannot make it kill anything else.
class WorkerKiller {
 public:
  WorkerKiller(pid_t map, std::uint32_t seed) : thread_([this, map, seed] { run(map, seed); }) {}
  WorkerKiller(const WorkerKiller&) = delete;
  WorkerKiller& operator=(const WorkerKiller&) = delete;
  ~WorkerKiller() { stop(); }

  void stop() {
    {
      const std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    if (thread_.joinable()) thread_.join();
  }
  std::size_t kills() const { return kills_.load(); }

 private:
  void run(pid_t map, std::uint32_t seed) {
    std::mt19937 random(seed);
    std::uniform_int_distribution<int> pause_ms(100, 250);
    std::unique_lock lock(mutex_);
    while (!wake_.wait_for(lock, std::chrono::milliseconds(pause_ms(random)),
                           [this] { return stopping_; })) {
      lock.unlock();
      if (kill_one(map, random)) ++kills_;
      lock.lock();
    }
  }

  static bool kill_one(pid_t map, std::mt19937& random) {
    const std::vector<pid_t> workers = live_children_of(map);
    if (workers.empty()) return false;
    const pid_t victim =
        workers[std::uniform_int_distribution<std::size_t>(0, workers.size() - 1)(random)];
    const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, victim, 0));
    if (pidfd < 0) return false;
    const std::vector<pid_t> still = live_children_of(map);
    const bool killed = std::find(still.begin(), still.end(), victim) != still.end() &&
                        ::syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, nullptr, 0) == 0;
    ::close(pidfd);
    return killed;
  }

  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::atomic<std::size_t> kills_{0};
  std::thread thread_;  // last: started once the members it uses exist
};

// Line L of `text` (counted from 1) must read `first + L - 1`, for `count` lines; says where
// the first difference is.
std::string first_difference(const std::string& text, std::uint64_t first, std::uint64_t count) {
  std::size_t at = 0;
  for (std::uint64_t line = 1; line <= count; ++line) {
    const std::string expected = std::to_string(first + line - 1) + "\n";
    if (text.compare(at, expected.size(), expected) != 0) {
      return "line " + std::to_string(line) + ": \"" + text.substr(at, 20) + "\", expected " +
             expected;
    }
    at += expected.size();
  }
  if (at != text.size()) return std::to_string(text.size() - at) + " bytes after the last line";
  return "";
}

// The chaos of the restart-policy finding, through `procpool map --retries 5` with default
// options otherwise: a random worker SIGKILLed every 100-250 ms while lines stream in. Each
// death is charged to the task that ran (5 more attempts), never counted as a crash loop that
// ends the pool, so every line comes out, in order, and the run succeeds. The input goes on
// until the killer has made its kills, so that slower or faster machines still see them all
// during the run. Fails while a worker that served and then died inside min_uptime counts as a
// broken start: after five in a row the pool failed and map stopped with status 1.
TEST_F(MapTest, RetriesOutlastAWorkerKilledEvery100To250Ms) {
  using procpool::test::kTimingScale;
  const std::uint64_t min_lines = 100'000 / kTimingScale;
  const std::size_t min_kills = kTimingScale == 1 ? 10 : 5;
  // Where feeding stops even if the kills fall short (then the test fails on their count).
  constexpr std::uint64_t kMaxLines = 10'000'000;
  constexpr std::uint64_t kChunk = 10'000;
  const std::uint32_t seed = std::random_device{}();
  SCOPED_TRACE("killer seed " + std::to_string(seed));

  std::optional<WorkerKiller> killer;
  std::uint64_t lines = 0;  // line L holds L - 1
  RunOptions options;
  options.deadline = 90s;
  options.on_started = [&](pid_t pid) { killer.emplace(pid, seed); };
  options.before_reap = [&] {
    if (killer) killer->stop();
  };
  options.more_input = [&] {
    std::string chunk;
    if (lines >= kMaxLines || (lines >= min_lines && killer && killer->kills() >= min_kills)) {
      return chunk;
    }
    for (std::uint64_t i = 0; i < kChunk; ++i) chunk += std::to_string(lines++) + "\n";
    return chunk;
  };
  const auto started = Clock::now();
  const Result run =
      run_procpool({"map", "--retries", "5", "--", worker("increment")}, "", options);
  const auto wall = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started);
  ASSERT_TRUE(killer.has_value());
  killer->stop();
  const std::size_t kills = killer->kills();
  std::printf("[ chaos    ] %llu lines, %zu workers SIGKILLed, %lld ms, status %d\n",
              static_cast<unsigned long long>(lines), kills, static_cast<long long>(wall.count()),
              run.exit_code);
  EXPECT_EXIT_CODE(run, 0);
  EXPECT_EQ(first_difference(run.out, 1, lines), "")
      << lines << " lines; stderr: " << run.err.substr(0, 4000);
  EXPECT_GE(kills, min_kills) << "too few workers killed during the run for it to show anything ("
                              << lines << " lines in " << wall.count() << " ms)";
}

// --- usage errors ---

TEST_F(MapTest, UnknownOptionIsAUsageError) {
  const Result run = run_procpool({"map", "--frobnicate", "--", worker("increment")});
  EXPECT_EXIT_CODE(run, 2);
  EXPECT_NE(run.err.find("--frobnicate"), std::string::npos) << run.err;
  EXPECT_NE(run.err.find("procpool map --help"), std::string::npos) << run.err;
}

TEST_F(MapTest, MissingWorkerPathIsReportedWithThePath) {
  const Result run = run_procpool({"map", "--", "/nonexistent/procpool-test/worker"}, "1\n");
  EXPECT_EXIT_CODE(run, 2);
  EXPECT_NE(run.err.find("/nonexistent/procpool-test/worker"), std::string::npos) << run.err;
  EXPECT_EQ(run.out, "");
}

TEST_F(MapTest, MissingDashesOrWorkerIsAUsageError) {
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"map", worker("increment")},
        std::vector<std::string>{"map", "--workers", "2"}, std::vector<std::string>{"map"},
        std::vector<std::string>{"map", "--"}}) {
    const Result run = run_procpool(args);
    EXPECT_EXIT_CODE(run, 2);
    EXPECT_NE(run.err.find("procpool map --help"), std::string::npos) << run.err;
  }
}

TEST_F(MapTest, BadNumbersAreUsageErrors) {
  for (const std::vector<std::string>& options :
       {std::vector<std::string>{"--workers", "0"}, std::vector<std::string>{"--workers", "two"},
        std::vector<std::string>{"--workers", "-1"}, std::vector<std::string>{"--retries", "-1"},
        std::vector<std::string>{"--retries", "1x"}, std::vector<std::string>{"--timeout", "5x"},
        std::vector<std::string>{"--timeout", "ms"}, std::vector<std::string>{"--timeout", "-2s"},
        std::vector<std::string>{"--grace", "5x"}, std::vector<std::string>{"--grace", "-1s"}}) {
    std::vector<std::string> args = {"map"};
    args.insert(args.end(), options.begin(), options.end());
    args.insert(args.end(), {"--", worker("increment")});
    const Result run = run_procpool(args);
    EXPECT_EXIT_CODE(run, 2);
    EXPECT_NE(run.err.find(options[0]), std::string::npos) << run.err;
  }
}

// Each form is read as the duration it says: --timeout's shows in the Timeout report of a
// hung task, --grace's in the notice after SIGINT while tasks run (sleep_run, below).
std::vector<std::string> sleep_run(const std::vector<std::string>& options);

TEST_F(MapTest, AcceptsDurationForms) {
  for (const auto& [timeout, shown] :
       {std::pair{"300ms", "300 ms"}, std::pair{"0.3", "300 ms"}, std::pair{"0.25s", "250 ms"}}) {
    const Result run = run_procpool(
        {"map", "--timeout", timeout, "--handler", "hang", "--", worker("crashy")}, "1\n");
    EXPECT_EXIT_CODE(run, 1);
    EXPECT_NE(run.err.find(std::string("line 1: Timeout: ")), std::string::npos) << run.err;
    EXPECT_NE(run.err.find(std::string("timed out after ") + shown), std::string::npos)
        << timeout << ": " << run.err;
  }
  for (const auto& [grace, shown] :
       {std::pair{"500ms", "500 ms"}, std::pair{"2s", "2 s"}, std::pair{"1m", "60 s"},
        std::pair{"1.5m", "90 s"}, std::pair{"1h", "3600 s"}, std::pair{"3", "3 s"},
        std::pair{"0.5", "500 ms"}}) {
    RunOptions options;
    options.keep_stdin_open = true;
    options.signals = {{SIGINT, 2, ""}};
    const Result run = run_procpool(sleep_run({"--grace", grace}),
                                    repeat_line("1", 2) + repeat_line("200", 40), options);
    EXPECT_EXIT_CODE(run, 130);
    EXPECT_NE(run.err.find(std::string("waiting up to ") + shown + " for the running ones"),
              std::string::npos)
        << grace << ": " << run.err;
  }
}

TEST_F(MapTest, UnknownHandlerIsAUsageError) {
  const Result run =
      run_procpool({"map", "--handler", "no_such_handler", "--", worker("increment")}, "1\n");
  EXPECT_EXIT_CODE(run, 2);
  EXPECT_NE(run.err.find("no_such_handler"), std::string::npos) << run.err;
}

TEST_F(MapTest, UnknownCommandIsAUsageError) {
  const Result run = run_procpool({"frobnicate"});
  EXPECT_EXIT_CODE(run, 2);
  EXPECT_NE(run.err.find("frobnicate"), std::string::npos) << run.err;
}

// --- help, version, progress, stats ---

TEST_F(MapTest, HelpAndVersion) {
  const Result version = run_procpool({"--version"});
  EXPECT_EXIT_CODE(version, 0);
  EXPECT_EQ(version.out, "procpool 0.1.0\n");
  const Result help = run_procpool({"--help"});
  EXPECT_EXIT_CODE(help, 0);
  EXPECT_NE(help.out.find("map"), std::string::npos);
  const Result map_help = run_procpool({"map", "--help"});
  EXPECT_EXIT_CODE(map_help, 0);
  EXPECT_NE(map_help.out.find("Usage: procpool map"), std::string::npos);
  EXPECT_NE(map_help.out.find("--unordered"), std::string::npos);
  EXPECT_NE(map_help.out.find("--grace DURATION"), std::string::npos);
  EXPECT_NE(map_help.out.find("130 interrupted by SIGINT, 143 interrupted by SIGTERM"),
            std::string::npos);
}

TEST_F(MapTest, StatsPrintsASummary) {
  const Result run = run_procpool({"map", "--stats", "--", worker("increment")}, numbers(1, 1000));
  EXPECT_EXIT_CODE(run, 0);
  EXPECT_EQ(run.out, numbers(2, 1001));
  EXPECT_NE(run.err.find("1000 tasks, 0 failed"), std::string::npos) << run.err;
  EXPECT_NE(run.err.find("lines/s"), std::string::npos) << run.err;
}

TEST_F(MapTest, ProgressGoesToStderrOnly) {
  const Result run =
      run_procpool({"map", "--progress", "--", worker("increment")}, numbers(1, 1000));
  EXPECT_EXIT_CODE(run, 0);
  EXPECT_EQ(run.out, numbers(2, 1001));
  EXPECT_NE(run.err.find("\rprocpool map: 1,000 lines"), std::string::npos) << run.err;
}

// --- interruption (SIGINT, SIGTERM) and crash reports ---

// The crashy worker's "sleep" handler sleeps the line's milliseconds and answers "slept". The
// runs below feed two 1 ms lines first: once both results are out, each of the two workers has
// started the line after (they were handed two each), so a signal then finds them running.
std::vector<std::string> sleep_run(const std::vector<std::string>& options) {
  std::vector<std::string> args = {"map", "--workers", "2", "--handler", "sleep"};
  args.insert(args.end(), options.begin(), options.end());
  args.insert(args.end(), {"--", worker("crashy")});
  return args;
}

// The checks every interrupted sleep run shares: the exit status, prompt, every result written
// is right, the report accounts for every line read (`lines` of them, stdin still open), and
// the notice and the report each start a line.
void expect_interrupted_sleep_run(const Result& run, int status, const std::string& name,
                                  std::size_t lines) {
  EXPECT_EXIT_CODE(run, status);
  const std::vector<std::string> results = lines_of(run.out);
  for (const std::string& result : results) EXPECT_EQ(result, "slept");
  EXPECT_NE(run.err.find("procpool map: " + name + " received"), std::string::npos) << run.err;
  EXPECT_NE(run.err.find("procpool map: interrupted by " + name), std::string::npos) << run.err;
  EXPECT_NE(run.err.find(": " + std::to_string(results.size()) + " results written, 0 failed, "),
            std::string::npos)
      << run.err;
  const std::size_t not_completed = lines - results.size();
  EXPECT_NE(run.err.find(std::to_string(not_completed) + (not_completed == 1 ? " line" : " lines") +
                         " not completed\n"),
            std::string::npos)
      << run.err;
  // Every line read has its result written or is named; with stdin still open, more lines may
  // follow, so the list ends with "N-" (which may take in the last lines read).
  const NotCompleted missing = parse_not_completed(run.err);
  ASSERT_TRUE(missing.reported) << run.err;
  ASSERT_GE(missing.rest_from, 1u) << run.err;
  ASSERT_LE(missing.rest_from, lines + 1) << run.err;
  for (const std::uint64_t line : missing.lines) EXPECT_LT(line, missing.rest_from) << run.err;
  EXPECT_EQ(results.size() + missing.lines.size() + (lines + 1 - missing.rest_from), lines)
      << run.err;
  for (const char* message : {"procpool map: interrupted", "procpool map: not completed",
                              "procpool map: SIGINT", "procpool map: SIGTERM"}) {
    expect_messages_start_lines(run.err, message);
  }
}

TEST_F(MapTest, SigintStopsReadingFinishesRunningTasksAndExits130) {
  RunOptions options;
  options.keep_stdin_open = true;
  options.signals = {{SIGINT, 2, ""}};
  const Result run =
      run_procpool(sleep_run({}), repeat_line("1", 2) + repeat_line("200", 40), options);
  ASSERT_EQ(run.signals_sent, 1u) << run.err;
  expect_interrupted_sleep_run(run, 130, "SIGINT", 42);
  // The running tasks take 200 ms; the 30 s default grace is not waited out.
  EXPECT_LT(run.exit_after_signal, 10s) << run.err;
  EXPECT_GE(lines_of(run.out).size(), 4u)
      << "the tasks running at the signal finished: " << run.err;
}

TEST_F(MapTest, SigtermExits143AndEndsTheProgressLine) {
  RunOptions options;
  options.keep_stdin_open = true;
  options.signals = {{SIGTERM, 2, ""}};
  const Result run = run_procpool(sleep_run({"--progress"}),
                                  repeat_line("1", 2) + repeat_line("200", 40), options);
  ASSERT_EQ(run.signals_sent, 1u) << run.err;
  expect_interrupted_sleep_run(run, 143, "SIGTERM", 42);
  EXPECT_LT(run.exit_after_signal, 10s) << run.err;
  // The final progress line is there, ended.
  EXPECT_NE(
      run.err.find("\rprocpool map: " + std::to_string(lines_of(run.out).size()) + " lines, "),
      std::string::npos)
      << run.err;
  EXPECT_NE(run.err.find(" lines/s in 0:"), std::string::npos) << run.err;
  ASSERT_FALSE(run.err.empty());
  EXPECT_EQ(run.err.back(), '\n') << run.err;
}

// Lines 3 and 4 (300 ms each) are running on the two workers when SIGTERM arrives: both
// complete within the grace and their results are written.
TEST_F(MapTest, TasksRunningAtTheSignalFinishWithinTheGrace) {
  RunOptions options;
  options.keep_stdin_open = true;
  options.signals = {{SIGTERM, 2, ""}};
  const Result run =
      run_procpool(sleep_run({}), repeat_line("1", 2) + repeat_line("300", 20), options);
  ASSERT_EQ(run.signals_sent, 1u) << run.err;
  expect_interrupted_sleep_run(run, 143, "SIGTERM", 22);
  const NotCompleted missing = parse_not_completed(run.err);
  EXPECT_EQ(missing.lines.count(3), 0u) << run.err;
  EXPECT_EQ(missing.lines.count(4), 0u) << run.err;
  EXPECT_GT(missing.rest_from, 4u) << run.err;
  EXPECT_GE(lines_of(run.out).size(), 4u) << run.err;
}

// Tasks of 10 s with --grace 100ms: their workers are killed when the grace runs out, and the
// lines are reported as not completed, not as failed.
TEST_F(MapTest, GraceRunsOutAndRunningTasksAreNotCompleted) {
  RunOptions options;
  options.keep_stdin_open = true;
  options.signals = {{SIGTERM, 2, ""}};
  const Result run = run_procpool(sleep_run({"--grace", "100ms"}),
                                  repeat_line("1", 2) + repeat_line("10000", 6), options);
  ASSERT_EQ(run.signals_sent, 1u) << run.err;
  expect_interrupted_sleep_run(run, 143, "SIGTERM", 8);
  EXPECT_EQ(run.out, "slept\nslept\n");
  EXPECT_NE(run.err.find("waiting up to 100 ms"), std::string::npos) << run.err;
  EXPECT_NE(run.err.find("procpool map: not completed: lines 3-\n"), std::string::npos) << run.err;
  EXPECT_EQ(run.err.find("WorkerCrashed"), std::string::npos) << run.err;
  EXPECT_LT(run.exit_after_signal, 5s) << run.err;
}

// A second SIGINT does not wait for the 60 s grace: the workers are killed at once.
TEST_F(MapTest, SecondSignalStopsAtOnce) {
  RunOptions options;
  options.keep_stdin_open = true;
  options.signals = {{SIGINT, 2, ""}, {SIGINT, 0, "SIGINT received"}};
  const Result run = run_procpool(sleep_run({"--grace", "60s"}),
                                  repeat_line("1", 2) + repeat_line("10000", 6), options);
  ASSERT_EQ(run.signals_sent, 2u) << run.err;
  expect_interrupted_sleep_run(run, 130, "SIGINT", 8);
  EXPECT_EQ(run.out, "slept\nslept\n");
  EXPECT_NE(run.err.find("interrupted by SIGINT, stopped at once"), std::string::npos) << run.err;
  EXPECT_NE(run.err.find("procpool map: not completed: lines 3-\n"), std::string::npos) << run.err;
  EXPECT_LT(run.exit_after_signal, 5s) << run.err;
}

// A fast stream interrupted in the middle: whatever was written is the right result of its
// line, in input order, and every line read without a result is named as not completed.
TEST_F(MapTest, InterruptedOutputIsInOrderAndNamesEveryMissingLine) {
  for (const bool unordered : {false, true}) {
    SCOPED_TRACE(unordered ? "--unordered" : "ordered");
    RunOptions options;
    options.keep_stdin_open = true;
    options.signals = {{SIGINT, 50'000, ""}};
    std::vector<std::string> args = {"map", "--workers", "2"};
    if (unordered) args.push_back("--unordered");
    args.insert(args.end(), {"--", worker("increment")});
    const Result run = run_procpool(args, numbers(0, 1'999'999), options);  // line L holds L - 1
    ASSERT_EQ(run.signals_sent, 1u) << run.err.substr(0, 2000);
    EXPECT_EXIT_CODE(run, 130);
    const NotCompleted missing = parse_not_completed(run.err);
    ASSERT_TRUE(missing.reported) << run.err.substr(0, 2000);
    ASSERT_GT(missing.rest_from, 1u) << run.err.substr(0, 2000);
    std::string expected;
    for (std::uint64_t line = 1; line < missing.rest_from; ++line) {
      if (missing.lines.count(line) == 0) expected += std::to_string(line) + "\n";
    }
    if (unordered) {
      EXPECT_TRUE(sorted_lines(run.out) == sorted_lines(expected))
          << run.out.size() << " bytes written, " << expected.size() << " expected";
    } else {
      EXPECT_TRUE(run.out == expected)
          << run.out.size() << " bytes written, " << expected.size() << " expected";
    }
  }
}

// A worker that dies under its task: the line's report says how (exit code or signal), how
// long the worker had been up, what it was running, and its last stderr lines, indented under
// the report, with --progress kept off the report's lines. The worker is crashy started by a
// shell that writes two lines to stderr first.
TEST_F(MapTest, CrashReportSaysHowTheWorkerEndedWithItsLastStderrLines) {
  const std::vector<std::string> wrapper = {
      "/bin/sh", "-c", "echo 'before the crash' >&2; echo 'second line' >&2; exec \"$0\"",
      worker("crashy")};
  std::vector<std::string> args = {"map",       "--workers", "1", "--progress",
                                   "--handler", "exit",      "--"};
  args.insert(args.end(), wrapper.begin(), wrapper.end());
  const Result exited = run_procpool(args, "7\n");
  EXPECT_EXIT_CODE(exited, 1);
  EXPECT_EQ(exited.out, "");
  EXPECT_NE(exited.err.find("procpool map: line 1: WorkerCrashed: worker 0 (pid "),
            std::string::npos)
      << exited.err;
  EXPECT_NE(exited.err.find("exit code 7, up "), std::string::npos) << exited.err;
  EXPECT_NE(exited.err.find("running a \"exit\" task (attempt 1 of 1); last stderr lines:\n"
                            "      | before the crash\n"
                            "      | second line\n"),
            std::string::npos)
      << exited.err;
  EXPECT_EQ(exited.err.find("\n\n"), std::string::npos) << exited.err;
  expect_messages_start_lines(exited.err, "procpool map: line ");

  args[5] = "segfault";
  const Result signalled = run_procpool(args, "x\n");
  EXPECT_EXIT_CODE(signalled, 1);
  EXPECT_NE(signalled.err.find("procpool map: line 1: WorkerCrashed: "), std::string::npos)
      << signalled.err;
  EXPECT_NE(signalled.err.find("killed by signal 11 (SIGSEGV)"), std::string::npos)
      << signalled.err;
  expect_messages_start_lines(signalled.err, "procpool map: line ");
}

}  // namespace
