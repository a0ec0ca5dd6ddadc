// Tests of procpool::detail::launch(), the supervisor's process launcher (docs/design-rules.md
// §8-13, 22).
//
// Each TEST runs as its own process under CTest. Every child is started through launch() or
// ChildProcess, waited for with a bound (pidfd + poll, never a sleep) and reaped; nothing here
// calls waitpid(-1) or touches SIGCHLD.
//
// The helper program (launcher_test_child.cpp) is found through PROCPOOL_LAUNCHER_TEST_CHILD (a
// compile definition set by CMake), or else next to this test binary.

#include "procpool/detail/launcher.hpp"

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

namespace procpool::detail {
namespace {

using namespace std::chrono_literals;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

constexpr milliseconds kTimeout = 10s;  // generous bound for anything that should be quick

std::string helper_path() {
#ifdef PROCPOOL_LAUNCHER_TEST_CHILD
  return PROCPOOL_LAUNCHER_TEST_CHILD;
#else
  return (std::filesystem::read_symlink("/proc/self/exe").parent_path() / "launcher_test_child")
      .string();
#endif
}

int pidfd_open(int pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }
int pidfd_send_signal(int pidfd, int sig) {
  return static_cast<int>(::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0));
}

// Waits up to `timeout` for `fd` to become readable (POLLIN or POLLHUP).
bool wait_readable(int fd, milliseconds timeout) {
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
std::optional<std::string> read_to_eof(int fd, milliseconds timeout = kTimeout) {
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
std::optional<std::string> read_exactly(int fd, std::size_t size, milliseconds timeout = kTimeout) {
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
std::string unescape(const std::string& text) {
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

Report parse_report(const std::string& text) {
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
Report run_report(LaunchSpec spec) {
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

std::string readlink_fd(int fd) {
  std::error_code ec;
  return std::filesystem::read_symlink("/proc/self/fd/" + std::to_string(fd), ec).string();
}

std::set<int> open_fds() {
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
std::map<int, char> children_of_this_process() {
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

std::string describe(const std::map<int, char>& children) {
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
std::string launch_error(const LaunchSpec& spec) {
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

LaunchSpec helper_spec(std::vector<std::string> args = {}) {
  LaunchSpec spec;
  spec.executable = helper_path();
  spec.args = std::move(args);
  return spec;
}

// --- argv, environment ------------------------------------------------------------------------

TEST(LauncherTest, PassesArgvAndEnvironment) {
  const ScopedEnv inherited("PROCPOOL_LT_INHERITED", "from-parent");
  const ScopedEnv overridden("PROCPOOL_LT_OVERRIDDEN", "parent-value");
  LaunchSpec spec = helper_spec({"two words", "", "x=y", "tab\tless", "new\nline\\", "\xc3\xbc"});
  spec.env = {{"PROCPOOL_LT_NEW", "new value"},
              {"PROCPOOL_LT_OVERRIDDEN", "child-value"},
              {"PROCPOOL_LT_REPEATED", "first"},
              {"PROCPOOL_LT_REPEATED", "second"},
              {"PROCPOOL_LT_EMPTY", ""}};
  const Report report = run_report(spec);

  const std::vector<std::string> expected_args = {
      helper_path(), "report", "two words", "", "x=y", "tab\tless", "new\nline\\", "\xc3\xbc"};
  EXPECT_EQ(report.args, expected_args);
  EXPECT_EQ(report.env_values("PROCPOOL_LT_INHERITED"), std::vector<std::string>{"from-parent"});
  EXPECT_EQ(report.env_values("PROCPOOL_LT_OVERRIDDEN"), std::vector<std::string>{"child-value"});
  EXPECT_EQ(report.env_values("PROCPOOL_LT_NEW"), std::vector<std::string>{"new value"});
  EXPECT_EQ(report.env_values("PROCPOOL_LT_REPEATED"), std::vector<std::string>{"second"});
  EXPECT_EQ(report.env_values("PROCPOOL_LT_EMPTY"), std::vector<std::string>{""});
  if (const char* path = std::getenv("PATH")) {
    EXPECT_EQ(report.env_values("PATH"), std::vector<std::string>{path});
  }
}

TEST(LauncherTest, SearchesPathForABareName) {
  const std::string dir = std::filesystem::path(helper_path()).parent_path().string();
  const std::string name = std::filesystem::path(helper_path()).filename().string();
  const TempDir empty;
  const ScopedEnv path("PATH", "/nonexistent-procpool-dir:" + empty.path() + ":" + dir);
  LaunchSpec spec;
  spec.executable = name;
  const Report report = run_report(spec);
  ASSERT_FALSE(report.args.empty());
  EXPECT_EQ(report.args[0], dir + "/" + name);
}

TEST(LauncherTest, BareNameNotInPathThrows) {
  const TempDir dir;
  const ScopedEnv path("PATH", dir.path());
  LaunchSpec spec;
  spec.executable = "procpool-no-such-program";
  const std::string message = launch_error(spec);
  EXPECT_NE(message.find("procpool-no-such-program"), std::string::npos) << message;
  EXPECT_NE(message.find("No such file"), std::string::npos) << message;
  EXPECT_TRUE(children_of_this_process().empty());
}

// --- fds ----------------------------------------------------------------------------------------

TEST(LauncherTest, ChildGetsOnlyStdioAndTheInheritedFds) {
  // Non-CLOEXEC fds that must not leak: low ones (below Boost's exec-error pipe, in the gap the
  // 1.81 close_all never closes), one between the pipe and the inherited fds, one above them.
  std::vector<Fd> leaky;
  for (int i = 0; i < 3; ++i) leaky.emplace_back(::open("/dev/null", O_RDONLY));
  int raw[2];
  ASSERT_EQ(::pipe(raw), 0);
  leaky.emplace_back(raw[0]);
  leaky.emplace_back(raw[1]);
  leaky.emplace_back(::eventfd(0, 0));
  leaky.emplace_back(::fcntl(leaky[0].get(), F_DUPFD, 60));
  leaky.emplace_back(::fcntl(leaky[0].get(), F_DUPFD, 300));
  for (const Fd& fd : leaky) {
    ASSERT_GE(fd.get(), 0);
    ASSERT_EQ(::fcntl(fd.get(), F_GETFD) & FD_CLOEXEC, 0);
  }

  // The worker's fds: a CLOEXEC memfd (the normal case), a CLOEXEC pipe end, and one fd that is
  // not CLOEXEC in the parent.
  Fd memfd(::memfd_create("procpool-launcher-test", MFD_CLOEXEC));
  ASSERT_GE(memfd.get(), 0);
  Fd inherited_memfd(::fcntl(memfd.get(), F_DUPFD_CLOEXEC, 100));
  Pipe pipe = Pipe::make();
  Fd inherited_pipe(::fcntl(pipe.write.get(), F_DUPFD_CLOEXEC, 150));
  Fd inherited_plain(::fcntl(leaky[0].get(), F_DUPFD, 200));
  ASSERT_GE(inherited_memfd.get(), 100);
  ASSERT_GE(inherited_pipe.get(), 150);
  ASSERT_GE(inherited_plain.get(), 200);

  LaunchSpec spec = helper_spec();
  spec.inherit_fds = {inherited_pipe.get(), inherited_memfd.get(), inherited_plain.get(),
                      inherited_memfd.get()};  // order and repeats do not matter
  const Report report = run_report(spec);

  std::set<int> child_fds;
  for (const auto& [fd, target] : report.fds) child_fds.insert(fd);
  const std::set<int> expected = {
      0, 1, 2, inherited_memfd.get(), inherited_pipe.get(), inherited_plain.get()};
  EXPECT_EQ(child_fds, expected);
  for (const int fd : {inherited_memfd.get(), inherited_pipe.get(), inherited_plain.get()}) {
    EXPECT_EQ(report.fds.count(fd) ? report.fds.at(fd) : "(closed)", readlink_fd(fd))
        << "fd " << fd << " is not the same object in the child";
  }
  // The parent's flags are untouched: CLOEXEC is cleared in the child only.
  EXPECT_NE(::fcntl(inherited_memfd.get(), F_GETFD) & FD_CLOEXEC, 0);
  EXPECT_NE(::fcntl(inherited_pipe.get(), F_GETFD) & FD_CLOEXEC, 0);
  EXPECT_EQ(::fcntl(inherited_plain.get(), F_GETFD) & FD_CLOEXEC, 0);
}

TEST(LauncherTest, StdinDefaultsToDevNull) {
  const Report report = run_report(helper_spec());
  ASSERT_EQ(report.fds.count(0), 1u);
  EXPECT_EQ(report.fds.at(0), "/dev/null");
}

TEST(LauncherTest, StdinFdIsConnected) {
  Pipe in = Pipe::make();
  Pipe out = Pipe::make();
  LaunchSpec spec = helper_spec({"echo-stdin"});
  spec.stdin_fd = in.read.get();
  spec.stdout_fd = out.write.get();
  Child child(spec);
  in.read.reset();
  out.write.reset();
  const std::string message = "hello through stdin\n";
  ASSERT_EQ(::write(in.write.get(), message.data(), message.size()),
            static_cast<ssize_t>(message.size()));
  in.write.reset();  // EOF for the child
  EXPECT_EQ(read_to_eof(out.read.get()), message);
  EXPECT_TRUE(child.exited_with(0));
}

TEST(LauncherTest, CapturesStderrThroughAPipe) {
  Pipe err = Pipe::make();
  LaunchSpec spec = helper_spec({"stderr", "worker says hello"});
  spec.stderr_fd = err.write.get();
  Child child(spec);
  err.write.reset();
  EXPECT_EQ(read_to_eof(err.read.get()), "worker says hello");
  EXPECT_TRUE(child.exited_with(0));
}

TEST(LauncherTest, StdoutAndStderrSourcesMayBeStdioFds) {
  // stdout_fd = 2 and stderr_fd = 1: each dup2 would clobber the other's source if done naively.
  // Runs in a forked copy whose fds 1 and 2 are pipes, so ours stay untouched.
  Pipe a = Pipe::make();
  Pipe b = Pipe::make();
  auto intermediate = test::ChildProcess::fork([&] {
    ::dup2(a.write.get(), 1);
    ::dup2(b.write.get(), 2);
    LaunchSpec spec = helper_spec({"both"});
    spec.stdout_fd = 2;
    spec.stderr_fd = 1;
    Child child(spec);
    return child.exited_with(0) ? 0 : 1;
  });
  ASSERT_TRUE(intermediate.started());
  a.write.reset();
  b.write.reset();
  EXPECT_EQ(read_to_eof(a.read.get()), "to-stderr");
  EXPECT_EQ(read_to_eof(b.read.get()), "to-stdout");
  EXPECT_TRUE(intermediate.exited_cleanly(kTimeout));
}

TEST(LauncherTest, LeavesNoFdOfItsOwnInTheParent) {
  const std::set<int> before = open_fds();
  {
    Child child(helper_spec({"exit", "0"}));
    std::set<int> during = open_fds();
    EXPECT_EQ(during.erase(child.pidfd()), 1u);
    EXPECT_EQ(during, before);
    EXPECT_TRUE(child.exited_with(0));
  }
  EXPECT_EQ(open_fds(), before);

  const TempDir dir;
  LaunchSpec bad;
  bad.executable = dir.file("garbage", "\x01\x02 not a program\n", 0755);
  EXPECT_FALSE(launch_error(bad).empty());
  bad.executable = dir.path() + "/missing";
  EXPECT_FALSE(launch_error(bad).empty());
  EXPECT_EQ(open_fds(), before);
}

// --- signals, process group, pidfd ---------------------------------------------------------------

TEST(LauncherTest, ResetsSignalMaskAndDispositions) {
  sigset_t block, old_mask;
  sigemptyset(&block);
  for (const int sig : {SIGUSR2, SIGTERM, SIGINT, SIGCHLD}) sigaddset(&block, sig);
  ASSERT_EQ(::sigprocmask(SIG_BLOCK, &block, &old_mask), 0);
  struct sigaction ignore {};
  ignore.sa_handler = SIG_IGN;
  struct sigaction old_usr1 {};
  struct sigaction old_pipe {};
  struct sigaction old_hup {};
  ASSERT_EQ(::sigaction(SIGUSR1, &ignore, &old_usr1), 0);
  ASSERT_EQ(::sigaction(SIGPIPE, &ignore, &old_pipe), 0);
  ASSERT_EQ(::sigaction(SIGHUP, &ignore, &old_hup), 0);

  const Report report = run_report(helper_spec());

  ::sigaction(SIGUSR1, &old_usr1, nullptr);
  ::sigaction(SIGPIPE, &old_pipe, nullptr);
  ::sigaction(SIGHUP, &old_hup, nullptr);
  ::sigprocmask(SIG_SETMASK, &old_mask, nullptr);

  EXPECT_TRUE(report.blocked.empty()) << report.blocked.size() << " signals still blocked";
  ASSERT_EQ(report.disp.size(), 31u);
  // exec resets caught signals by itself; only SIG_IGN survives it. (A sanitizer runtime in the
  // helper installs its own SIGSEGV/SIGBUS/SIGFPE handlers after exec: HANDLER is not ours.)
  for (const auto& [sig, disp] : report.disp) {
    EXPECT_NE(disp, "IGN") << "signal " << sig << " (" << ::strsignal(sig) << ")";
  }
  for (const int sig : {SIGUSR1, SIGPIPE, SIGHUP, SIGUSR2, SIGTERM, SIGINT, SIGCHLD}) {
    EXPECT_EQ(report.disp.at(sig), "DFL") << "signal " << sig << " (" << ::strsignal(sig) << ")";
  }
}

TEST(LauncherTest, ChildLeadsItsOwnProcessGroupWithPdeathsig) {
  const Report report = run_report(helper_spec());
  EXPECT_GT(report.pid, 0);
  EXPECT_EQ(report.pgid, report.pid);
  EXPECT_NE(report.pgid, ::getpgrp());
  EXPECT_EQ(report.ppid, ::getpid());
  EXPECT_EQ(report.pdeathsig, SIGKILL);
}

TEST(LauncherTest, PidfdIsCloexecAndSignalsTheChild) {
  Pipe out = Pipe::make();
  LaunchSpec spec = helper_spec({"pause"});
  spec.stdout_fd = out.write.get();
  Child child(spec);
  out.write.reset();
  ASSERT_EQ(read_exactly(out.read.get(), 6), "ready\n");
  const int flags = ::fcntl(child.pidfd(), F_GETFD);
  ASSERT_GE(flags, 0);
  EXPECT_NE(flags & FD_CLOEXEC, 0);
  EXPECT_FALSE(wait_readable(child.pidfd(), 0ms)) << "the child is not running";
  ASSERT_EQ(pidfd_send_signal(child.pidfd(), SIGTERM), 0) << std::strerror(errno);
  const auto status = child.wait(kTimeout);
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFSIGNALED(*status));
  EXPECT_EQ(WTERMSIG(*status), SIGTERM);
}

// PDEATHSIG: a child whose spawner dies is SIGKILLed by the kernel. The spawner is a forked
// intermediate (it calls launch() itself); this process becomes a subreaper so the orphaned
// grandchild is reparented to us and can be reaped here.
TEST(LauncherTest, ChildDiesWhenItsSpawnerIsKilled) {
  ASSERT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), 0);
  Pipe pid_pipe = Pipe::make();
  Pipe out = Pipe::make();
  auto spawner = test::ChildProcess::fork([&] {
    LaunchSpec spec = helper_spec({"pause"});
    spec.stdout_fd = out.write.get();
    const LaunchedProcess grandchild = launch(spec);
    if (::write(pid_pipe.write.get(), &grandchild.pid, sizeof(grandchild.pid)) !=
        static_cast<ssize_t>(sizeof(grandchild.pid))) {
      return 1;
    }
    for (;;) ::pause();
  });
  ASSERT_TRUE(spawner.started());
  pid_pipe.write.reset();
  out.write.reset();

  const auto pid_bytes = read_exactly(pid_pipe.read.get(), sizeof(int));
  ASSERT_TRUE(pid_bytes.has_value()) << "the spawner did not report a pid";
  int grandchild = -1;
  std::memcpy(&grandchild, pid_bytes->data(), sizeof(grandchild));
  // The grandchild cannot have exited yet (it pauses) and nobody reaps it while the spawner
  // lives, so this pid is still it.
  Fd grandchild_pidfd(pidfd_open(grandchild));
  ASSERT_GE(grandchild_pidfd.get(), 0) << std::strerror(errno);
  ASSERT_EQ(read_exactly(out.read.get(), 6), "ready\n");  // exec'ed, PDEATHSIG armed

  spawner.kill(SIGKILL);
  ASSERT_TRUE(spawner.wait_for_exit(kTimeout).has_value());

  const bool died = wait_readable(grandchild_pidfd.get(), 1000ms);
  EXPECT_TRUE(died) << "grandchild " << grandchild << " outlived its spawner by more than 1 s";
  if (!died) pidfd_send_signal(grandchild_pidfd.get(), SIGKILL);
  // Now our child (we are its subreaper): reap it.
  ASSERT_TRUE(wait_readable(grandchild_pidfd.get(), kTimeout));
  int status = 0;
  EXPECT_EQ(::waitpid(grandchild, &status, 0), grandchild) << std::strerror(errno);
  if (died) {
    EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "status " << status;
  }
  ::prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0);
  EXPECT_TRUE(children_of_this_process().empty()) << describe(children_of_this_process());
}

// --- errors -------------------------------------------------------------------------------------

TEST(LauncherTest, MissingExecutableThrowsBeforeForking) {
  const TempDir dir;
  LaunchSpec spec;
  spec.executable = dir.path() + "/no-such-worker";
  const std::string message = launch_error(spec);
  EXPECT_NE(message.find(spec.executable), std::string::npos) << message;
  EXPECT_NE(message.find("No such file"), std::string::npos) << message;
  EXPECT_TRUE(children_of_this_process().empty());
}

TEST(LauncherTest, NonExecutableFileThrowsPermissionDenied) {
  const TempDir dir;
  LaunchSpec spec;
  spec.executable = dir.file("not-executable", "#!/bin/sh\nexit 0\n", 0644);
  const std::string message = launch_error(spec);
  EXPECT_NE(message.find(spec.executable), std::string::npos) << message;
  EXPECT_NE(message.find("Permission denied"), std::string::npos) << message;
  EXPECT_TRUE(children_of_this_process().empty());
}

TEST(LauncherTest, DirectoryThrows) {
  const TempDir dir;
  LaunchSpec spec;
  spec.executable = dir.path();
  const std::string message = launch_error(spec);
  EXPECT_NE(message.find(spec.executable), std::string::npos) << message;
  EXPECT_NE(message.find("Is a directory"), std::string::npos) << message;
  EXPECT_TRUE(children_of_this_process().empty());
}

TEST(LauncherTest, ExecFailureThrowsAndLeavesNoZombie) {
  const TempDir dir;
  LaunchSpec spec;
  // Executable bit, but neither ELF nor "#!": execve fails with ENOEXEC in the forked child.
  spec.executable = dir.file("garbage", "\x7f\x01\x02 garbage\n", 0755);
  const std::string message = launch_error(spec);
  EXPECT_NE(message.find(spec.executable), std::string::npos) << message;
  EXPECT_NE(message.find(std::strerror(ENOEXEC)), std::string::npos) << message;
  const auto children = children_of_this_process();
  EXPECT_TRUE(children.empty()) << "children left: " << describe(children);
}

// Boost 1.81 calls ::exit() in the child after a failed exec; with our on_exec_error hook the
// child _exits and the copy of this process never runs our atexit handlers.
char g_atexit_marker[4096];
pid_t g_test_pid = -1;
void atexit_handler() {
  if (::getpid() != g_test_pid) {
    const int fd = ::open(g_atexit_marker, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd >= 0) ::close(fd);
  }
}

TEST(LauncherTest, ExecFailureRunsNoAtexitHandlerInTheChild) {
  const TempDir dir;
  const std::string marker = dir.path() + "/atexit-ran";
  ASSERT_LT(marker.size(), sizeof(g_atexit_marker));
  marker.copy(g_atexit_marker, marker.size());
  g_atexit_marker[marker.size()] = '\0';
  g_test_pid = ::getpid();
  ASSERT_EQ(std::atexit(atexit_handler), 0);

  LaunchSpec spec;
  spec.executable = dir.file("garbage", "garbage\n", 0755);
  EXPECT_FALSE(launch_error(spec).empty());
  EXPECT_FALSE(std::filesystem::exists(marker)) << "the failed child ran our atexit handlers";
  EXPECT_TRUE(children_of_this_process().empty());
}

TEST(LauncherTest, RejectsAnInvalidSpec) {
  Fd closed(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  const int closed_fd = closed.get();
  closed.reset();

  LaunchSpec spec = helper_spec();
  spec.inherit_fds = {1};
  EXPECT_NE(launch_error(spec).find("inherit_fds"), std::string::npos);

  spec = helper_spec();
  spec.inherit_fds = {closed_fd};
  EXPECT_NE(launch_error(spec).find("Bad file descriptor"), std::string::npos);

  spec = helper_spec();
  spec.stderr_fd = closed_fd;
  EXPECT_NE(launch_error(spec).find("stderr_fd"), std::string::npos);

  spec = helper_spec();
  spec.env = {{"BAD=NAME", "x"}};
  EXPECT_NE(launch_error(spec).find("BAD=NAME"), std::string::npos);

  spec = helper_spec();
  spec.env = {{"", "x"}};
  EXPECT_FALSE(launch_error(spec).empty());

  spec = helper_spec({std::string("nul\0inside", 10)});
  EXPECT_NE(launch_error(spec).find("NUL"), std::string::npos);

  spec = LaunchSpec{};
  EXPECT_NE(launch_error(spec).find("empty"), std::string::npos);

  EXPECT_TRUE(children_of_this_process().empty());
}

}  // namespace
}  // namespace procpool::detail
