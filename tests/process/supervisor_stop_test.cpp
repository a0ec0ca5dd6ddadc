// Stopping with real children, around the leftovers of a process group (KillMode, docs/
// supervisor.md): the SIGKILL deadline is the one set when the stop began, leftovers that exit
// are noticed without an EOF, stop() returns exactly once even when a start or restart comes
// before the stop completed, kill() reaches the leftovers of a run already reaped, and a main
// process reaped by another waiter in our process is an exit of unknown status.
//
// A leftover is a grandchild that ignores SIGTERM (an ignored signal survives exec), so only
// SIGKILL ends it; each test makes one only in its first run ("once" marker) so that the
// supervisor's destructor is not kept waiting for a grace. It says it is there only once its
// trap is set (a signal before that would end it), and a main process that traps the stop
// signal sets its trap before that.

#include <signal.h>    // kill, SIGKILL
#include <sys/wait.h>  // waitpid

#include <atomic>  // std::atomic
#include <future>  // std::async

#include "supervisor_test_support.hpp"

namespace procpool::test {
namespace {

using Kind = SupervisorEvent::Kind;
using Clock = std::chrono::steady_clock;

// A grandchild that only SIGKILL ends, in the first run only; it prints "grandchild PID".
constexpr const char* kStubbornGrandchild =
    "if mkdir \"$DIR/once\" 2>/dev/null; then\n"
    "  sh -c 'trap \"\" TERM; echo \"grandchild $$\"; exec sleep 1000' &\n"
    "fi\n";

bool ready_within(std::future<void>& future, std::chrono::milliseconds timeout = kEventTimeout) {
  return future.wait_for(timeout) == std::future_status::ready;
}

// The main process takes 2 s to exit after the stop signal, within the 3 s grace; its
// grandchild ignores the signal. Everything must be SIGKILLed 3 s after the stop began, not 3 s
// after the main process exited (5 s).
TEST(SupervisorStop, LeftoversAreKilledAtTheDeadlineSetWhenTheStopBegan) {
  ScriptDir dir;
  EventLog log;
  LineLog lines;
  Supervisor supervisor({log.callback()});
  ProgramSpec spec =
      spec_for("slow", dir.script("slow.sh", "trap 'sleep 2; exit 0' TERM\n" +
                                                 std::string(kStubbornGrandchild) + "wait"));
  spec.stop_grace = 3000ms;  // what this test is about
  spec.stdout_sink.on_line = lines.callback();
  supervisor.add(spec);
  supervisor.start("slow");
  const int grandchild = std::stoi(lines.wait_for("grandchild "));

  const auto began = Clock::now();
  supervisor.stop("slow");  // returns once the group is gone
  const auto took = Clock::now() - began;

  // The main process exited on its own in answer to the stop signal, before the deadline.
  const SupervisorEvent exited = log.wait_for(Kind::Exited);
  ASSERT_TRUE(exited.exit.has_value());
  EXPECT_FALSE(exited.exit->signaled);
  EXPECT_EQ(exited.exit->exit_code, 0);
  EXPECT_EQ(exited.exit->killed_by, KillReason::Stop);
  EXPECT_TRUE(wait_gone(grandchild, 1000ms));
  // The grandchild ignores SIGTERM: only the deadline's SIGKILL ended it.
  EXPECT_GE(took, spec.stop_grace);
  // A fresh grace from the main process's exit would end no sooner than 2 s + 3 s.
  EXPECT_LT(took, 5000ms);
}

// The main process exits on its own; its grandchild closed stdout and stderr before and exits
// 1 s later. No EOF tells the supervisor, so it must look again on its own: stop() returns once
// the group is gone, long before the default 10 s grace. (The main process exits only once the
// grandchild, its trap set, has written to the FIFO.)
TEST(SupervisorStop, ALeftoverWithoutPipesIsNoticedWhenItExits) {
  ScriptDir dir;
  EventLog log;
  Supervisor supervisor({log.callback()});
  ProgramSpec spec = spec_for(
      "quick",
      dir.script("quick.sh",
                 "mkfifo \"$DIR/up\"\n"
                 "(exec >/dev/null 2>&1; trap '' TERM; echo up > \"$DIR/up\"; exec sleep 1) &\n"
                 "read line < \"$DIR/up\"\n"
                 "exit 0"));
  spec.restart_mode = RestartMode::Never;  // one run: its leftover is the only one
  supervisor.add(spec);
  supervisor.start("quick");
  log.wait_for(Kind::Stopped);  // the main process is gone, its grandchild is not
  const auto began = Clock::now();
  supervisor.stop("quick");
  EXPECT_LT(Clock::now() - began, 5000ms);  // the grace (10 s) would be twice that
  EXPECT_EQ(supervisor.status()[0].state, ProgramState::Stopped);
}

// stop() is waiting for a leftover when start() starts the next run: it returns once the
// leftover is gone, although the instance is not Stopped any more.
TEST(SupervisorStop, StopReturnsWhenAStartCameBeforeItCompleted) {
  ScriptDir dir;
  EventLog log;
  LineLog lines;
  std::future<void> stopping;  // outlives the supervisor, whose destructor ends any stop
  Supervisor supervisor({log.callback()});
  ProgramSpec spec = spec_for(
      "group", dir.script("group.sh", std::string(kStubbornGrandchild) + "exec sleep 1000"));
  spec.stdout_sink.on_line = lines.callback();
  supervisor.add(spec);
  supervisor.start("group");
  const int grandchild = std::stoi(lines.wait_for("grandchild "));

  stopping = std::async(std::launch::async, [&] { supervisor.stop("group"); });
  log.wait_for(Kind::Stopped);  // the main process is gone; the grandchild has its grace
  supervisor.start("group");
  log.wait_for(Kind::Started, 2);
  EXPECT_FALSE(ready_within(stopping, 0ms)) << "stop() returned with the grandchild alive";
  ASSERT_EQ(::kill(grandchild, SIGKILL), 0);
  EXPECT_TRUE(ready_within(stopping));
  EXPECT_EQ(supervisor.status()[0].state, ProgramState::Ready);
}

// stop() is waiting for a main process that does not stop when restart() comes: it returns
// once that run is gone, while the restart runs the next one.
TEST(SupervisorStop, StopReturnsWhenARestartCameBeforeItCompleted) {
  ScriptDir dir;
  EventLog log;
  LineLog lines;
  std::future<void> stopping;
  Supervisor supervisor({log.callback()});
  // The first run shrugs off the stop signal (the trap), later ones do not.
  ProgramSpec spec = spec_for(
      "deaf", dir.script("deaf.sh",
                         "if mkdir \"$DIR/once\" 2>/dev/null; then trap 'echo got-term' TERM; fi\n"
                         "echo \"main $$\"\n"
                         "while :; do sleep 0.1; done"));
  spec.stdout_sink.on_line = lines.callback();
  supervisor.add(spec);
  supervisor.start("deaf");
  const int main_pid = std::stoi(lines.wait_for("main "));

  stopping = std::async(std::launch::async, [&] { supervisor.stop("deaf"); });
  lines.wait_for("got-term");  // Stopping, and it will not exit within the grace
  supervisor.restart("deaf");
  EXPECT_FALSE(ready_within(stopping, 0ms)) << "stop() returned with the main process alive";
  ASSERT_EQ(::kill(main_pid, SIGKILL), 0);
  EXPECT_TRUE(ready_within(stopping));
  log.wait_for(Kind::Started, 2);  // the restart
  const SupervisorEvent exited = log.wait_for(Kind::Exited);
  ASSERT_TRUE(exited.exit.has_value());
  EXPECT_EQ(exited.exit->signal, SIGKILL);
  EXPECT_EQ(exited.exit->killed_by, KillReason::Stop);
}

// kill(): the main process is gone, its grandchild has the whole default grace (10 s) left; kill
// SIGKILLs it now, and the stop in progress returns.
TEST(SupervisorStop, KillReachesTheLeftoversOfAReapedRun) {
  ScriptDir dir;
  EventLog log;
  LineLog lines;
  std::future<void> stopping;
  Supervisor supervisor({log.callback()});
  ProgramSpec spec = spec_for(
      "group", dir.script("group.sh", std::string(kStubbornGrandchild) + "exec sleep 1000"));
  spec.stdout_sink.on_line = lines.callback();
  supervisor.add(spec);
  supervisor.start("group");
  const int grandchild = std::stoi(lines.wait_for("grandchild "));

  stopping = std::async(std::launch::async, [&] { supervisor.stop("group"); });
  log.wait_for(Kind::Stopped);
  const auto killed = Clock::now();
  supervisor.kill("group");
  EXPECT_TRUE(ready_within(stopping));
  EXPECT_LT(Clock::now() - killed, scaled(5000ms));
  EXPECT_TRUE(wait_gone(grandchild, 1000ms));
  EXPECT_EQ(log.count(Kind::Started), 1u);
}

// kill() on a running instance: SIGKILL at once, no grace for a program that ignores the stop
// signal, and no restart.
TEST(SupervisorStop, KillStopsARunningInstanceWithoutTheGrace) {
  ScriptDir dir;
  EventLog log;
  Supervisor supervisor({log.callback()});
  supervisor.add(spec_for("deaf", dir.script("deaf.sh", "trap '' TERM\nexec sleep 1000")));
  supervisor.start("deaf");
  log.wait_for(Kind::Ready);
  supervisor.kill("deaf");
  const SupervisorEvent exited = log.wait_for(Kind::Exited);
  ASSERT_TRUE(exited.exit.has_value());
  EXPECT_EQ(exited.exit->signal, SIGKILL);
  EXPECT_EQ(exited.exit->killed_by, KillReason::Stop);
  log.wait_for(Kind::Stopped);
  supervisor.stop("deaf");  // returns at once: nothing left
  EXPECT_EQ(supervisor.status()[0].state, ProgramState::Stopped);
  EXPECT_EQ(log.count(Kind::Started), 1u);
}

// A host whose SIGCHLD handler reaps with waitpid(-1) takes our child's status (here the event
// callback, on the supervisor's thread, does it before the supervisor looks). The exit is
// reported with an unknown status (status_known false), and the supervisor goes on: it restarts.
TEST(SupervisorStop, AMainProcessReapedByAnotherWaiterIsAnExitOfUnknownStatus) {
  ScriptDir dir;
  EventLog log;
  auto record = log.callback();
  std::atomic<bool> reaped{false};
  Supervisor supervisor({[&](const SupervisorEvent& event) {
    if (event.kind == Kind::Ready && !reaped.exchange(true)) {
      ::kill(event.pid, SIGKILL);
      int status = 0;
      ::waitpid(event.pid, &status, 0);
    }
    record(event);
  }});
  supervisor.add(spec_for("orphan", dir.script("orphan.sh", "exec sleep 1000")));
  supervisor.start("orphan");
  const SupervisorEvent exited = log.wait_for(Kind::Exited);
  ASSERT_TRUE(exited.exit.has_value());
  EXPECT_FALSE(exited.exit->signaled);
  EXPECT_FALSE(exited.exit->status_known);
  EXPECT_EQ(exited.exit->exit_code, -1);
  EXPECT_NE(exited.exit->ending().find("unknown"), std::string::npos) << exited.exit->ending();
  EXPECT_NE(exited.message.find("unknown"), std::string::npos) << exited.message;
  log.wait_for(Kind::Ready, 2);  // the loop did not spin on the pidfd: the next run came
}

}  // namespace
}  // namespace procpool::test
