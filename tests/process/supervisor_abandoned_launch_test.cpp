// ManagedProcess on its own (no Supervisor, the test's thread is its loop thread): a launch that
// fails after the fork (here the pid claim throws, as EventLoop::watch could) kills and reaps
// the child before the error comes out, and the instance stays Stopped.

#include <signal.h>    // kill, SIGKILL
#include <sys/wait.h>  // waitpid

#include <cerrno>  // errno

#include "event_loop.hpp"
#include "managed_process.hpp"
#include "procpool/error.hpp"
#include "supervisor_test_support.hpp"

namespace procpool::test {
namespace {

TEST(SupervisorAbandonedLaunch, AFailureAfterTheForkKillsAndReapsTheChild) {
  ScriptDir dir;
  detail::EventLoop loop;
  std::vector<SupervisorEvent> events;
  int claimed = 0;
  detail::ProcessHost host;
  host.loop = &loop;
  host.notify_path = dir.file("no-notify-socket");
  host.emit = [&](SupervisorEvent event) { events.push_back(std::move(event)); };
  host.count_callback_error = [] {};
  host.claim_pid = [&](int pid, detail::ManagedProcess* process) {
    if (process == nullptr) return;
    claimed = pid;
    throw Error("claim refused");  // what this test is about: a step after the launch throws
  };
  host.uniform01 = [] { return 0.5; };
  host.changed = [] {};
  auto program = std::make_shared<detail::Program>();
  program->spec = spec_for("doomed", dir.script("doomed.sh", "exec sleep 1000"));
  program->stdout_sinks = detail::SinkSet::make(OutputSink::none());
  program->stderr_sinks = detail::SinkSet::make(OutputSink::none());
  detail::ManagedProcess process(host, program, 0);

  try {
    process.start();
    ADD_FAILURE() << "start() did not throw";
  } catch (const SupervisorError& e) {
    EXPECT_EQ(e.kind(), SupervisorError::Kind::SpawnFailed);
    EXPECT_NE(std::string(e.what()).find("claim refused"), std::string::npos) << e.what();
  }
  EXPECT_EQ(process.state(), ProgramState::Stopped);
  EXPECT_TRUE(process.idle());
  ASSERT_GT(claimed, 0) << "the launch did not get as far as the claim";
  // Reaped: it is no child of ours any more (and not running untracked).
  const pid_t r = ::waitpid(claimed, nullptr, WNOHANG);
  const int error = errno;
  EXPECT_EQ(r, -1);
  EXPECT_EQ(error, ECHILD);
  if (r == 0) {  // left running: do not leak it past the test
    ::kill(claimed, SIGKILL);
    ::waitpid(claimed, nullptr, 0);
  }
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().kind, SupervisorEvent::Kind::SpawnFailed);
}

}  // namespace
}  // namespace procpool::test
