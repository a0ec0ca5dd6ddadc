// Restarts with real children and the default RestartPolicy: a crash loop backs off with
// growing bounds, is reported, and recovers once the program is fixed; memory limits restart.

#include "supervisor_test_support.hpp"

namespace procpool::test {
namespace {

using Kind = SupervisorEvent::Kind;

TEST(SupervisorRestart, CrashLoopBacksOffAndRecoversOnceFixed) {
  ScriptDir dir;
  EventLog log;
  Supervisor supervisor({log.callback()});
  supervisor.add(spec_for(
      "flaky", dir.script("flaky.sh", "[ -f \"$DIR/fixed\" ] && exec sleep 1000\nexit 1")));
  supervisor.start("flaky");
  const RestartPolicy policy;  // the defaults
  const SupervisorEvent loop = log.wait_for(Kind::CrashLoop);
  EXPECT_EQ(loop.broken_in_a_row, policy.crash_loop_after);
  EXPECT_EQ(supervisor.status()[0].state, ProgramState::CrashLoop);

  // Each broken start's delay is drawn below a bound that doubles.
  auto cap = policy.initial_backoff;
  std::uint64_t n = 0;
  for (const auto& e : log.events()) {
    if (e.kind != Kind::Backoff && e.kind != Kind::CrashLoop) continue;
    ++n;
    EXPECT_EQ(e.broken_in_a_row, n);
    EXPECT_EQ(e.delay_cap, std::min(cap, policy.max_backoff));
    EXPECT_LT(e.delay, e.delay_cap);
    EXPECT_EQ(e.kind, n >= policy.crash_loop_after ? Kind::CrashLoop : Kind::Backoff);
    cap *= 2;
    if (n == policy.crash_loop_after) break;
  }
  EXPECT_EQ(n, policy.crash_loop_after);

  std::ofstream(dir.file("fixed")).put('1');
  log.wait_for(Kind::Ready, policy.crash_loop_after + 1);  // every start is ready at exec
  const auto status = supervisor.status();
  EXPECT_EQ(status[0].state, ProgramState::Ready);
  EXPECT_GE(status[0].restarts, policy.crash_loop_after);
}

TEST(SupervisorRestart, MemorySoftLimitRestartsGracefully) {
  ScriptDir dir;
  EventLog log;
  Supervisor supervisor({log.callback()});
  ProgramSpec spec = spec_for("hog", dir.script("hog.sh", "exec sleep 1000"));
  spec.memory_soft_limit = 1;  // what this test is about: any process is above it
  supervisor.add(spec);
  supervisor.start("hog");
  const SupervisorEvent exited = log.wait_for(Kind::Exited);
  ASSERT_TRUE(exited.exit.has_value());
  EXPECT_EQ(exited.exit->killed_by, KillReason::MemorySoft);
  EXPECT_EQ(exited.exit->signal, SIGTERM);
  log.wait_for(Kind::Started, 2);
}

TEST(SupervisorRestart, MemoryHardLimitKills) {
  ScriptDir dir;
  EventLog log;
  Supervisor supervisor({log.callback()});
  ProgramSpec spec = spec_for("hog", dir.script("hog.sh", "exec sleep 1000"));
  spec.memory_hard_limit = 1;  // what this test is about
  supervisor.add(spec);
  supervisor.start("hog");
  const SupervisorEvent exited = log.wait_for(Kind::Exited);
  ASSERT_TRUE(exited.exit.has_value());
  EXPECT_EQ(exited.exit->killed_by, KillReason::MemoryHard);
  EXPECT_EQ(exited.exit->signal, SIGKILL);
}

// give_up_after, reached: the instance stays stopped, and its Stopped event says it gave up
// (SupervisorEvent::gave_up), which a stop asked for never does.
TEST(SupervisorRestart, GivingUpIsTellingApartFromAStop) {
  ScriptDir dir;
  EventLog log;
  Supervisor supervisor({log.callback()});
  ProgramSpec broken = spec_for("broken", dir.script("broken.sh", "exit 1"));
  broken.restart.give_up_after = 2;
  supervisor.add(broken);
  supervisor.add(spec_for("fine", dir.script("fine.sh", "exec sleep 1000")));
  supervisor.start("broken");
  supervisor.start("fine");
  const SupervisorEvent gave_up = log.wait_for(Kind::Stopped);
  EXPECT_EQ(gave_up.program, "broken");
  EXPECT_TRUE(gave_up.gave_up);
  EXPECT_EQ(gave_up.broken_in_a_row, 2U);
  log.wait_for(Kind::Ready, 1, "fine:0");
  supervisor.stop("fine");
  const SupervisorEvent stopped = log.wait_for(Kind::Stopped, 2);
  EXPECT_EQ(stopped.program, "fine");
  EXPECT_FALSE(stopped.gave_up);
}

}  // namespace
}  // namespace procpool::test
