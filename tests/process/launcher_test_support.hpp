#pragma once

// What the launcher tests share: the helper program, pipes, bounded reads, /proc views of fds
// and children, a private temp dir. Inline, in a named namespace, so each test file uses what it
// needs.

#include <dirent.h>  // opendir
#include <fcntl.h>   // open, fcntl
#include <gtest/gtest.h>
#include <poll.h>         // poll
#include <signal.h>       // sigaction, sigprocmask
#include <sys/eventfd.h>  // eventfd
#include <sys/mman.h>     // memfd_create
#include <sys/prctl.h>    // PR_SET_CHILD_SUBREAPER
#include <sys/stat.h>     // chmod
#include <sys/syscall.h>  // SYS_pidfd_open, SYS_pidfd_send_signal
#include <sys/wait.h>     // waitpid
#include <unistd.h>       // pipe2, close, getpid

#include <algorithm>   // std::count_if
#include <cerrno>      // errno
#include <chrono>      // std::chrono
#include <cstdlib>     // std::getenv, setenv, atexit
#include <cstring>     // std::strerror
#include <filesystem>  // std::filesystem
#include <fstream>     // std::ifstream, std::ofstream
#include <map>         // std::map
#include <optional>    // std::optional
#include <set>         // std::set
#include <sstream>     // std::istringstream
#include <string>      // std::string
#include <vector>      // std::vector

#include "../common/child_process.hpp"
#include "procpool/error.hpp"
#include "procpool/unique_fd.hpp"

#include "procpool/detail/launcher.hpp"

namespace procpool::detail::launcher_test {

using namespace std::chrono_literals;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

inline constexpr milliseconds kTimeout = 10s;  // generous bound for anything that should be quick

inline std::string helper_path() {
#ifdef PROCPOOL_LAUNCHER_TEST_CHILD
  return PROCPOOL_LAUNCHER_TEST_CHILD;
#else
  return (std::filesystem::read_symlink("/proc/self/exe").parent_path() / "launcher_test_child")
      .string();
#endif
}

inline int pidfd_open(int pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }
inline int pidfd_send_signal(int pidfd, int sig) {
  return static_cast<int>(::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0));
}

// Waits up to `timeout` for `fd` to become readable (POLLIN or POLLHUP).
inline bool wait_readable(int fd, milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
    pollfd pfd{fd, POLLIN, 0};
    const int ready = ::poll(&pfd, 1, static_cast<int>(std::max<long>(left, 0)));
    if (ready < 0 && errno == EINTR) continue;
    return ready > 0;
  }
}

using Fd = procpool::UniqueFd;

struct Pipe {
  Fd read;
  Fd write;
  static Pipe make() {  // O_CLOEXEC, as every supervisor fd (docs/design-rules.md §13)
    int fds[2];
    EXPECT_EQ(::pipe2(fds, O_CLOEXEC), 0) << std::strerror(errno);
    return Pipe{Fd(fds[0]), Fd(fds[1])};
  }
};

// Reads `fd` until EOF, at most `timeout` in all. nullopt if EOF did not come in time.
inline std::optional<std::string> read_to_eof(int fd, milliseconds timeout = kTimeout) {
  std::string text;
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
    if (!wait_readable(fd, std::max(left, milliseconds(0)))) return std::nullopt;
    char buffer[4096];
    const ssize_t n = ::read(fd, buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return std::nullopt;
    if (n == 0) return text;
    text.append(buffer, static_cast<std::size_t>(n));
  }
}

// Reads exactly `size` bytes from `fd` within `timeout`.
inline std::optional<std::string> read_exactly(int fd, std::size_t size,
                                               milliseconds timeout = kTimeout) {
  std::string text;
  const auto deadline = Clock::now() + timeout;
  while (text.size() < size) {
    const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
    if (!wait_readable(fd, std::max(left, milliseconds(0)))) return std::nullopt;
    char buffer[256];
    const ssize_t n = ::read(fd, buffer, std::min(sizeof(buffer), size - text.size()));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return std::nullopt;
    text.append(buffer, static_cast<std::size_t>(n));
  }
  return text;
}

// A launched child, always reaped: the destructor SIGKILLs it (through the pidfd) if it is still
// running and reaps it.
class Child {
 public:
  explicit Child(const LaunchSpec& spec) : process_(launch(spec)) {}
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child() {
    if (process_.pid > 0) {
      pidfd_send_signal(process_.pidfd, SIGKILL);
      wait(kTimeout);
    }
    if (process_.pidfd >= 0) ::close(process_.pidfd);
  }

  int pid() const { return process_.pid; }
  int pidfd() const { return process_.pidfd; }

  // Waits at most `timeout` for the child to exit, reaps it and returns the raw wait status.
  std::optional<int> wait(milliseconds timeout) {
    if (process_.pid <= 0) return std::nullopt;
    if (!wait_readable(process_.pidfd, timeout)) return std::nullopt;
    int status = 0;
    pid_t r;
    do {
      r = ::waitpid(process_.pid, &status, 0);
    } while (r < 0 && errno == EINTR);
    if (r != process_.pid) return std::nullopt;
    process_.pid = -1;
    return status;
  }

  bool exited_with(int code, milliseconds timeout = kTimeout) {
    const auto status = wait(timeout);
    return status && WIFEXITED(*status) && WEXITSTATUS(*status) == code;
  }

 private:
  LaunchedProcess process_;
};

// What `launcher_test_child report` printed.
struct Report {
  std::vector<std::string> args;
  std::vector<std::string> env;  // NAME=VALUE entries, in order
  std::map<int, std::string> fds;
  std::vector<int> blocked;
  std::map<int, std::string> disp;
  long pid = -1, ppid = -1, pgid = -1, pdeathsig = -1;

  std::vector<std::string> env_values(const std::string& name) const {
    std::vector<std::string> values;
    for (const std::string& entry : env) {
      if (entry.compare(0, name.size() + 1, name + "=") == 0) {
        values.push_back(entry.substr(name.size() + 1));
      }
    }
    return values;
  }
};

// Undoes the helper's escaping ("\\\\" -> '\\', "\\n" -> newline).
inline std::string unescape(const std::string& text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\\' && i + 1 < text.size()) {
      out += text[i + 1] == 'n' ? '\n' : text[i + 1];
      ++i;
    } else {
      out += text[i];
    }
  }
  return out;
}

inline Report parse_report(const std::string& text) {
  Report report;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    const auto tab = line.find('\t');
    const std::string key = line.substr(0, tab);
    const std::string rest = tab == std::string::npos ? "" : line.substr(tab + 1);
    const auto tab2 = rest.find('\t');
    const std::string first = rest.substr(0, tab2);
    const std::string second = tab2 == std::string::npos ? "" : rest.substr(tab2 + 1);
    if (key == "arg") {
      EXPECT_EQ(std::stoul(first), report.args.size());
      report.args.push_back(unescape(second));
    } else if (key == "env") {
      report.env.push_back(unescape(rest));
    } else if (key == "fd") {
      report.fds[std::stoi(first)] = unescape(second);
    } else if (key == "blocked") {
      report.blocked.push_back(std::stoi(first));
    } else if (key == "disp") {
      report.disp[std::stoi(first)] = second;
    } else if (key == "pid") {
      report.pid = std::stol(first);
    } else if (key == "ppid") {
      report.ppid = std::stol(first);
    } else if (key == "pgid") {
      report.pgid = std::stol(first);
    } else if (key == "pdeathsig") {
      report.pdeathsig = std::stol(first);
    } else {
      ADD_FAILURE() << "unexpected report line: " << line;
    }
  }
  return report;
}

// Launches the helper in `report` mode (stdout captured through a pipe), waits for it and parses
// what it printed.
inline Report run_report(LaunchSpec spec) {
  Pipe out = Pipe::make();
  spec.stdout_fd = out.write.get();
  spec.args.insert(spec.args.begin(), "report");
  Child child(spec);
  out.write.reset();  // the child has its own copy; EOF comes when it exits
  const auto text = read_to_eof(out.read.get());
  EXPECT_TRUE(text.has_value()) << "no EOF from the child within the timeout";
  EXPECT_TRUE(child.exited_with(0));
  return parse_report(text.value_or(""));
}

inline std::string readlink_fd(int fd) {
  std::error_code ec;
  return std::filesystem::read_symlink("/proc/self/fd/" + std::to_string(fd), ec).string();
}

inline std::set<int> open_fds() {
  std::set<int> fds;
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return fds;
  const int own = ::dirfd(dir);
  while (const dirent* entry = ::readdir(dir)) {
    if (entry->d_name[0] == '.') continue;
    const int fd = std::atoi(entry->d_name);
    if (fd != own) fds.insert(fd);
  }
  ::closedir(dir);
  return fds;
}

// Our children (any state) and their state letter, from /proc/<pid>/stat ("pid (comm) S ppid").
inline std::map<int, char> children_of_this_process() {
  std::map<int, char> children;
  const pid_t self = ::getpid();
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream in(entry.path() / "stat");
    std::string stat;
    if (!std::getline(in, stat)) continue;  // exited meanwhile
    const auto paren = stat.rfind(')');
    if (paren == std::string::npos) continue;
    std::istringstream fields(stat.substr(paren + 1));
    char state = '?';
    long ppid = -1;
    fields >> state >> ppid;
    if (ppid == self) children[std::stoi(name)] = state;
  }
  return children;
}

inline std::string describe(const std::map<int, char>& children) {
  std::string text;
  for (const auto& [pid, state] : children) text += std::to_string(pid) + ":" + state + " ";
  return text;
}

// A private temporary directory, removed with its contents.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "procpool-launcher-XXXXXX");
    if (::mkdtemp(pattern.data()) == nullptr) ADD_FAILURE() << "mkdtemp: " << std::strerror(errno);
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  // Writes a file with `content` and permission `mode`; returns its path.
  std::string file(const std::string& name, const std::string& content, mode_t mode) const {
    const std::string path = (path_ / name).string();
    std::ofstream(path, std::ios::binary) << content;
    EXPECT_EQ(::chmod(path.c_str(), mode), 0) << std::strerror(errno);
    return path;
  }
  std::string path() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

// Runs `launch(spec)` expecting procpool::Error; returns its message (empty if nothing threw).
inline std::string launch_error(const LaunchSpec& spec) {
  try {
    const LaunchedProcess p = launch(spec);
    ADD_FAILURE() << "launch() succeeded unexpectedly (pid " << p.pid << ")";
    ::close(p.pidfd);
    ::kill(p.pid, SIGKILL);  // our unreaped child: the pid cannot have been reused
    int status;
    ::waitpid(p.pid, &status, 0);
  } catch (const Error& e) {
    return e.what();
  }
  return {};
}

// Restores an environment variable on scope exit.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    ::setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() {
    if (old_) {
      ::setenv(name_, old_->c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

inline LaunchSpec helper_spec(std::vector<std::string> args = {}) {
  LaunchSpec spec;
  spec.executable = helper_path();
  spec.args = std::move(args);
  return spec;
}

}  // namespace procpool::detail::launcher_test
