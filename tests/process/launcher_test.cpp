// Tests of procpool::detail::launch(), the supervisor's process launcher: what a started child
// gets (argv, environment, fds, stdio, signal state, process group, pidfd) (docs/design-rules.md
// §8-13, 22). Its failures are in launcher_failure_test.cpp.
//
// Each TEST runs as its own process under CTest. Every child is started through launch() or
// ChildProcess, waited for with a bound (pidfd + poll, never a sleep) and reaped; nothing here
// calls waitpid(-1) or touches SIGCHLD.

#include "launcher_test_support.hpp"

namespace procpool::detail::launcher_test {
namespace {

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

// pid_env_name: the child's own pid, which no one knew before the fork, replacing an inherited
// value (the supervisor's own WATCHDOG_PID when it runs under systemd).
TEST(LauncherTest, PidEnvNameHoldsTheChildsOwnPid) {
  const ScopedEnv inherited("PROCPOOL_LT_PID", "1");
  LaunchSpec spec = helper_spec();
  spec.pid_env_name = "PROCPOOL_LT_PID";
  const Report report = run_report(spec);
  EXPECT_EQ(report.env_values("PROCPOOL_LT_PID"),
            std::vector<std::string>{std::to_string(report.pid)});
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

// The launcher blocks every signal on the calling thread across its vfork (launcher.cpp): the
// caller's own mask must come back, after a launch and after an exec failure alike.
TEST(LauncherTest, LeavesTheCallersSignalMaskAsItWas) {
  sigset_t block, before;
  sigemptyset(&block);
  sigaddset(&block, SIGUSR2);
  ASSERT_EQ(::pthread_sigmask(SIG_BLOCK, &block, &before), 0);
  sigset_t expected;
  ASSERT_EQ(::pthread_sigmask(SIG_BLOCK, nullptr, &expected), 0);
  const auto same_as_expected = [&] {
    sigset_t now;
    if (::pthread_sigmask(SIG_BLOCK, nullptr, &now) != 0) return std::string("pthread_sigmask");
    std::string differ;
    for (int sig = 1; sig < NSIG; ++sig) {
      if (sigismember(&now, sig) != sigismember(&expected, sig))
        differ += std::to_string(sig) + " ";
    }
    return differ;
  };

  const Report report = run_report(helper_spec());
  const std::string after_launch = same_as_expected();
  const TempDir dir;
  LaunchSpec garbage;
  garbage.executable = dir.file("garbage", "garbage\n", 0755);
  const std::string error = launch_error(garbage);
  const std::string after_failure = same_as_expected();
  ::pthread_sigmask(SIG_SETMASK, &before, nullptr);

  EXPECT_GT(report.pid, 0);
  EXPECT_EQ(after_launch, "") << "signals whose blocking changed after a launch";
  EXPECT_FALSE(error.empty());
  EXPECT_EQ(after_failure, "") << "signals whose blocking changed after an exec failure";
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

}  // namespace
}  // namespace procpool::detail::launcher_test
