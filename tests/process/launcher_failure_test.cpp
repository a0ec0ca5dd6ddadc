// Tests of procpool::detail::launch() when things go wrong: the spawner dies (PDEATHSIG), the
// executable is missing, not executable or a directory, exec fails, the spec is invalid
// (docs/design-rules.md §8-13, 22).
//
// Each TEST runs as its own process under CTest. Every child is waited for with a bound and
// reaped; nothing here calls waitpid(-1) or touches SIGCHLD.

#include "launcher_test_support.hpp"

namespace procpool::detail::launcher_test {
namespace {

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
}  // namespace procpool::detail::launcher_test
