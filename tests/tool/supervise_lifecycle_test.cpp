// `procpool supervise` running real programs (shell scripts in a private temp dir): its exit
// status follows the program's, crash loops back off, SIGTERM/SIGINT stop the program with its
// process group, readiness, the watchdog and several instances.

#include <signal.h>  // SIGTERM, SIGINT

#include <string>  // outputs

#include <gtest/gtest.h>

#include "supervise_harness.hpp"

namespace procpool::supervise_test {
namespace {

TEST(SuperviseLifecycle, RestartNeverExitsWithTheProgramsStatus) {
  const ScriptDir dir;
  SuperviseRun run({"--restart", "never", "--", dir.script("fail", "exit 3")});
  EXPECT_EQ(run.wait_exit(), 3) << run.err();
  EXPECT_EQ(run.err_lines_with("fail:0 started (pid "), 1u) << run.err();
  EXPECT_EQ(run.err_lines_with("fail:0 exited: exit code 3 after "), 1u) << run.err();
  EXPECT_EQ(run.err_lines_with("not restarted (--restart never)"), 1u) << run.err();
}

TEST(SuperviseLifecycle, ProgramKilledBySignalExits128PlusIt) {
  const ScriptDir dir;
  SuperviseRun run({"--restart", "never", "--", dir.script("killed", "kill -9 $$")});
  EXPECT_EQ(run.wait_exit(), 128 + 9) << run.err();
  EXPECT_EQ(run.err_lines_with("killed by signal 9 (SIGKILL)"), 1u) << run.err();
}

TEST(SuperviseLifecycle, OnFailureLeavesACleanExitStopped) {
  const ScriptDir dir;
  SuperviseRun run({"--restart", "on-failure", "--", dir.script("done", "exit 0")});
  EXPECT_EQ(run.wait_exit(), 0) << run.err();
  EXPECT_EQ(run.err_lines_with("not restarted (--restart on-failure)"), 1u) << run.err();
}

// With the defaults (restart always, 100 ms doubling, crash loop after 5), a program that exits
// at once is restarted with a growing backoff and reported as crash-looping; SIGTERM then stops
// it and supervise exits 0, as a stop that was asked for.
TEST(SuperviseLifecycle, CrashLoopBacksOffThenSigtermStopsIt) {
  const ScriptDir dir;
  SuperviseRun run({"--name", "web", "--", dir.script("crash", "exit 1")});
  ASSERT_TRUE(run.wait_for_err("web:0 started", 3)) << run.err();
  EXPECT_GE(run.err_lines_with("web:0 exited: exit code 1 after "), 2u) << run.err();
  EXPECT_GE(run.err_lines_with("; restarting in "), 2u) << run.err();
  ASSERT_TRUE(run.wait_for_err("web:0 crash loop: 5 broken starts in a row; next start in "))
      << run.err();
  run.signal(SIGTERM);
  EXPECT_EQ(run.wait_exit(), 0) << run.err();
  EXPECT_EQ(run.err_lines_with("SIGTERM: stopping web (SIGTERM to each process group"), 1u)
      << run.err();
  EXPECT_EQ(run.err_lines_with("web:0 stopped"), 1u) << run.err();
}

// The program leaves a grandchild in its process group: the stop reaches it too.
TEST(SuperviseLifecycle, SigtermStopsTheWholeProcessGroup) {
  const ScriptDir dir;
  SuperviseRun run({"--", dir.script("parent", "sleep 300 &\necho \"grandchild $!\"\nwait")});
  ASSERT_TRUE(run.wait_for_out("grandchild ")) << run.err();
  const int grandchild = std::stoi(run.out().substr(run.out().find(' ') + 1));
  ASSERT_GT(grandchild, 0);
  run.signal(SIGINT);
  EXPECT_EQ(run.wait_exit(), 0) << run.err();
  EXPECT_TRUE(wait_gone(grandchild, test::scaled(std::chrono::milliseconds(2000))))
      << "grandchild " << grandchild;
  EXPECT_EQ(run.err_lines_with("parent:0 exited: killed by signal 15 (SIGTERM)"), 1u) << run.err();
}

// A program that ignores the stop signal would get the whole --stop-grace (10 s by default);
// a second signal SIGKILLs it at once, and supervise exits 128 + the first signal. (The ignored
// TERM survives the exec; no child of its own, whose exit could race with the group's.)
TEST(SuperviseLifecycle, SecondSignalKillsAtOnce) {
#if defined(__SANITIZE_THREAD__)
  // ThreadSanitizer loses the first SIGTERM sent to procpool supervise in about 1 run in 130
  // under load: nothing pending, the main thread polling, the handler never run (gdb). Waiting
  // for the "started" line first did not help. docs/testing.md.
  GTEST_SKIP() << "ThreadSanitizer can lose the first SIGTERM (docs/testing.md)";
#endif
  const ScriptDir dir;
  SuperviseRun run(
      {"--", dir.script("stubborn", "trap '' TERM\necho trapped\nexec \"$NOTIFY\" --pause")});
  ASSERT_TRUE(run.wait_for_out("trapped")) << run.err();
  // The program can print before supervise has finished starting it: signal once it has.
  ASSERT_TRUE(run.wait_for_err("stubborn:0 started")) << run.err();
  run.signal(SIGTERM);
  ASSERT_TRUE(run.wait_for_err("stopping stubborn")) << run.err();
  const auto second = std::chrono::steady_clock::now();
  run.signal(SIGTERM);
  EXPECT_EQ(run.wait_exit(), 128 + SIGTERM) << run.err();
  EXPECT_LT(std::chrono::steady_clock::now() - second,
            test::scaled(std::chrono::milliseconds(5000)))
      << run.err();
  EXPECT_EQ(run.err_lines_with("second SIGTERM: killing stubborn at once"), 1u) << run.err();
  EXPECT_EQ(run.err_lines_with("killed by signal 9 (SIGKILL)"), 1u) << run.err();
}

// The program exits on the first SIGTERM but leaves a grandchild in its group that ignores it,
// which the stop would SIGKILL only after the 10 s grace. The second signal reaches it although
// the program's main process is already reaped.
TEST(SuperviseLifecycle, SecondSignalKillsTheLeftoversOfAnExitedProgram) {
#if defined(__SANITIZE_THREAD__)
  // ThreadSanitizer loses the first SIGTERM sent to procpool supervise in about 1 run in 130
  // under load: nothing pending, the main thread polling, the handler never run (gdb). Waiting
  // for the "started" line first did not help. docs/testing.md.
  GTEST_SKIP() << "ThreadSanitizer can lose the first SIGTERM (docs/testing.md)";
#endif
  const ScriptDir dir;
  // The grandchild says it is there once its trap is set: a SIGTERM before would end it.
  SuperviseRun run(
      {"--", dir.script("leaver",
                        "sh -c 'trap \"\" TERM; echo \"grandchild $$\"; exec sleep 1000' &\n"
                        "exec sleep 1000")});
  ASSERT_TRUE(run.wait_for_out("grandchild ")) << run.err();
  const int grandchild = std::stoi(run.out().substr(run.out().find(' ') + 1));
  ASSERT_GT(grandchild, 0);
  ASSERT_TRUE(run.wait_for_err("leaver:0 started")) << run.err();  // as above
  run.signal(SIGTERM);
  // "exited: ...; stopped": the main process is gone, the grandchild has its grace.
  ASSERT_TRUE(run.wait_for_err("leaver:0 exited: killed by signal 15 (SIGTERM)")) << run.err();
  const auto second = std::chrono::steady_clock::now();
  run.signal(SIGTERM);
  EXPECT_EQ(run.wait_exit(), 128 + SIGTERM) << run.err();
  EXPECT_LT(std::chrono::steady_clock::now() - second,
            test::scaled(std::chrono::milliseconds(5000)))
      << run.err();
  EXPECT_TRUE(wait_gone(grandchild, test::scaled(std::chrono::milliseconds(2000))))
      << "grandchild " << grandchild;
}

TEST(SuperviseLifecycle, NotifyReadinessAndStatusText) {
  const ScriptDir dir;
  SuperviseRun run({"--ready", "notify", "--",
                    dir.script("svc", "exec \"$NOTIFY\" 'STATUS=warming up' READY=1 --pause")});
  ASSERT_TRUE(run.wait_for_err("svc:0 ready")) << run.err();
  ASSERT_TRUE(run.wait_for_err("svc:0 status: warming up")) << run.err();
  run.signal(SIGTERM);
  EXPECT_EQ(run.wait_exit(), 0) << run.err();
}

// Without READY=1, --ready notify never prints "ready" (the start timeout stops it).
TEST(SuperviseLifecycle, NoReadyWithoutReadyOne) {
  const ScriptDir dir;
  SuperviseRun run({"--ready", "notify", "--start-timeout", "300ms", "--restart", "never", "--",
                    dir.script("mute", "exec \"$NOTIFY\" --pause")});
  EXPECT_EQ(run.wait_exit(), 128 + SIGTERM) << run.err();
  EXPECT_EQ(run.err_lines_with("ready"), 0u) << run.err();
  EXPECT_EQ(run.err_lines_with("(start_timeout)"), 1u) << run.err();
}

TEST(SuperviseLifecycle, WatchdogRestartsAProgramThatStopsPinging) {
  const ScriptDir dir;
  SuperviseRun run({"--ready", "notify", "--watchdog", "300ms", "--",
                    dir.script("dog", "exec \"$NOTIFY\" READY=1 --ping 2 50 --pause")});
  ASSERT_TRUE(run.wait_for_err("dog:0 exited: killed by signal 9 (SIGKILL)")) << run.err();
  EXPECT_EQ(run.err_lines_with("(watchdog)"), 1u) << run.err();
  ASSERT_TRUE(run.wait_for_err("dog:0 started", 2)) << run.err();
  run.signal(SIGTERM);
  EXPECT_EQ(run.wait_exit(), 0) << run.err();
}

TEST(SuperviseLifecycle, NumprocsStartsEachInstance) {
  const ScriptDir dir;
  SuperviseRun run({"--numprocs", "2", "--", dir.script("pair", "echo \"up $$\"\nexec sleep 300")});
  ASSERT_TRUE(run.wait_for_out("up ", 2)) << run.err();
  // The programs' stdout and supervise's stderr are two pipes: a "started" line can come after
  // the program's own output.
  ASSERT_TRUE(run.wait_for_err("pair:0 started")) << run.err();
  ASSERT_TRUE(run.wait_for_err("pair:1 started")) << run.err();
  EXPECT_EQ(run.err_lines_with("pair:0 started"), 1u) << run.err();
  EXPECT_EQ(run.err_lines_with("pair:1 started"), 1u) << run.err();
  run.signal(SIGTERM);
  EXPECT_EQ(run.wait_exit(), 0) << run.err();
  EXPECT_EQ(run.err_lines_with("pair:0 exited"), 1u) << run.err();
  EXPECT_EQ(run.err_lines_with("pair:1 exited"), 1u) << run.err();
}

// With several instances the status is 0 only if every one exited 0.
TEST(SuperviseLifecycle, NumprocsExitStatusIsOneIfAnyFailed) {
  const ScriptDir dir;
  SuperviseRun clean({"--numprocs", "2", "--restart", "never", "--", dir.script("ok", "exit 0")});
  EXPECT_EQ(clean.wait_exit(), 0) << clean.err();
  // The instance that finds the marker first exits 0, the other 7.
  SuperviseRun mixed(
      {"--numprocs", "2", "--restart", "never", "--",
       dir.script("mixed", "if mkdir \"$DIR/first\" 2>/dev/null; then exit 0; fi\nexit 7")});
  EXPECT_EQ(mixed.wait_exit(), 1) << mixed.err();
}

TEST(SuperviseLifecycle, QuietPrintsNoLifeCycleLines) {
  const ScriptDir dir;
  SuperviseRun run({"-q", "--restart", "never", "--", dir.script("hush", "echo out\nexit 4")});
  EXPECT_EQ(run.wait_exit(), 4);
  EXPECT_EQ(run.err(), "");
  EXPECT_EQ(run.out(), "out\n");
}

}  // namespace
}  // namespace procpool::supervise_test
