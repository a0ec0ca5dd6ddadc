// Fault tests of procpool::Pool with real crashing workers (the crashy example worker): restarts
// after SIGKILL / SIGSEGV / SIGABRT / exit, crash reports with the last stderr lines, start-up
// backoff and the failed state, retries and poison tasks, and tasks on board of a crashed worker.
//
// Every fault is produced by a real cause (a signal sent from here, a crashing handler, a worker
// that exits before READY) and every wait is bounded (pool_test_support.hpp): futures and
// callbacks with a bound, states the pool reaches by itself polled with a bound (poll_until),
// and a per-test watchdog for the rest (destructors included).

#include <gtest/gtest.h>
#include <signal.h>  // kill, SIGKILL, SIGSTOP, SIGCONT

#include <chrono>    // durations
#include <future>    // std::async
#include <memory>    // std::make_shared
#include <mutex>     // std::mutex (events)
#include <optional>  // std::optional
#include <string>    // std::string
#include <vector>    // std::vector

#include "pool_fault_support.hpp"
#include "pool_test_support.hpp"  // bounded waits, Callbacks, poll_until, /proc readings, watchdog
#include "procpool/error.hpp"
#include "procpool/pool.hpp"
#include "test_workers.hpp"

namespace procpool::test {
namespace {

using namespace std::chrono_literals;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;
using Kind = TaskError::Kind;

// ---------------------------------------------------------------------------------------------
// Restarts

TEST_F(PoolFault, SigkilledWorkerIsReplacedAndPoolKeepsServing) {
  Pool pool(crashy());
  const int victim = pid_of(pool);
  ASSERT_GT(victim, 0);
  const auto before = slot_metrics(pool);
  ASSERT_TRUE(before);
  EXPECT_EQ(before->pid, victim);

  ASSERT_EQ(::kill(victim, SIGKILL), 0);
  // The pool notices through the worker's pidfd and refills the slot.
  ASSERT_TRUE(poll_until([&] { return replaced_since(pool, before->incarnation); }))
      << "slot 0 was not refilled after SIGKILL";

  const int successor = pid_of(pool);
  EXPECT_GT(successor, 0);
  EXPECT_NE(successor, victim);
  const PoolMetrics m = pool.metrics();
  EXPECT_GE(m.restarts, 1u);
  ASSERT_EQ(m.workers.size(), 1u);
  EXPECT_GT(m.workers[0].incarnation, before->incarnation);
  EXPECT_EQ(m.workers[0].restarts, 1u);
  EXPECT_EQ(m.workers[0].pid, successor);
  EXPECT_EQ(m.state, PoolMetrics::State::Running);
}

// A crashing handler: the task fails WorkerCrashed naming the worker's pid and its fate, and the
// next task runs on a fresh worker.
void expect_crash_then_recovery(const std::string& handler, const std::string& input,
                                const std::vector<std::string>& mentions) {
  Pool pool(small_pool("crashy", 1));
  const int victim = pid_of(pool);
  ASSERT_GT(victim, 0);
  const std::uint64_t incarnation = slot_metrics(pool)->incarnation;

  auto crash = pool.submit(handler, input);
  const auto error = error_of(crash);
  ASSERT_TRUE(error);
  EXPECT_EQ(error->kind(), Kind::WorkerCrashed) << error->what();
  EXPECT_EQ(error->worker_pid(), victim);
  const std::string what = error->what();
  for (const std::string& mention : mentions) {
    EXPECT_NE(what.find(mention), std::string::npos) << "\"" << mention << "\" not in: " << what;
  }
  EXPECT_NE(what.find(std::to_string(victim)), std::string::npos) << what;

  auto next = pool.submit("echo", "still here");
  EXPECT_EQ(value_of(next), "still here");
  const int successor = pid_of(pool);
  EXPECT_NE(successor, victim);
  const PoolMetrics m = pool.metrics();
  EXPECT_EQ(m.restarts, 1u);
  ASSERT_EQ(m.workers.size(), 1u);
  EXPECT_GT(m.workers[0].incarnation, incarnation);
}

TEST_F(PoolFault, SegfaultFailsTaskWithSignalAndRestartsWorker) {
  // The crash report says what ended the worker, how long it was up and what it was running.
  expect_crash_then_recovery(
      "segfault", "",
      {"signal 11", "SIGSEGV", ", up ", "running a \"segfault\" task (attempt 1 of 1)"});
}

TEST_F(PoolFault, AbortFailsTaskWithSigabrtAndRestartsWorker) {
  expect_crash_then_recovery("abort", "", {"signal 6", "SIGABRT"});
}

TEST_F(PoolFault, ExitFailsTaskWithExitCodeAndRestartsWorker) {
  expect_crash_then_recovery("exit", "7", {"exit code 7"});
}

TEST_F(PoolFault, CrashReportIncludesLastStderrLines) {
  Pool pool(crashy());
  auto words = pool.submit("stderr", "last words\n");
  ASSERT_EQ(value_of(words), "ok");
  auto crash = pool.submit("segfault", "");
  const auto error = error_of(crash);
  ASSERT_TRUE(error);
  EXPECT_EQ(error->kind(), Kind::WorkerCrashed);
  const std::string what = error->what();
  EXPECT_NE(what.find("last words"), std::string::npos) << what;
  EXPECT_NE(what.find("SIGSEGV"), std::string::npos) << what;
}

// ---------------------------------------------------------------------------------------------
// Start-up failures, backoff and the failed state

// A program that dies before READY every time: the constructor backs off between the starts
// (RestartPolicy's full jitter over a capped exponential, honoured by the restart times) and
// throws after crash_loop_after broken starts, with the reason.
TEST_F(PoolFault, WorkerDyingAtStartBacksOffThenConstructorThrows) {
  PoolOptions options = crashy();
  options.args = {"--exit-before-ready", "1"};
  options.restart.crash_loop_after = 3;
  auto events = std::make_shared<std::vector<PoolEvent>>();
  auto events_mu = std::make_shared<std::mutex>();
  options.on_event = [events, events_mu](const PoolEvent& e) {
    std::lock_guard lock(*events_mu);
    events->push_back(e);
  };

  const std::optional<std::string> error = bounded("Pool construction", [options] {
    std::optional<std::string> out;
    try {
      Pool pool(options);
    } catch (const TaskError& e) {
      out = std::string("unexpected TaskError: ") + e.what();
    } catch (const Error& e) {
      out = e.what();
    }
    return out;
  });
  ASSERT_TRUE(error) << "the constructor did not throw";
  EXPECT_NE(error->find("3 failures in a row"), std::string::npos) << *error;
  EXPECT_NE(error->find("exit code 1"), std::string::npos) << *error;
  EXPECT_NE(error->find("crashy: exiting before ready as asked"), std::string::npos) << *error;

  // Starts 1 and 2 were each followed by a WorkerRestarting event whose delay is below the
  // documented bound, and the next start came no earlier than that delay.
  std::lock_guard lock(*events_mu);
  std::vector<const PoolEvent*> restarting, started;
  for (const PoolEvent& e : *events) {
    if (e.kind == PoolEvent::Kind::WorkerRestarting) restarting.push_back(&e);
    if (e.kind == PoolEvent::Kind::WorkerStarted) started.push_back(&e);
  }
  ASSERT_EQ(started.size(), 3u);
  ASSERT_EQ(restarting.size(), 2u);
  const milliseconds bounds[] = {options.restart.initial_backoff,
                                 2 * options.restart.initial_backoff};
  for (std::size_t n = 0; n < 2; ++n) {
    EXPECT_GE(restarting[n]->delay.count(), 0);
    EXPECT_LT(restarting[n]->delay, bounds[n]) << "restart " << n + 1;
    EXPECT_EQ(restarting[n]->consecutive_failures, n + 1);
    EXPECT_GE(started[n + 1]->at - restarting[n]->at, restarting[n]->delay)
        << "restart " << n + 1 << " came before its backoff";
  }
  EXPECT_TRUE(child_processes().empty());  // every start was reaped
}

// Tasks that crash their worker are charged for it, each on its own: the workers that served
// them are restarted at once and the pool never fails (the old policy failed it after five such
// deaths within min_uptime, stopping every healthy worker).
TEST_F(PoolFault, CrashingTasksAreChargedToThemselvesAndThePoolKeepsServing) {
  Pool pool(crashy());
  std::vector<procpool::Future<std::string>> crashes;
  for (int i = 0; i < 8; ++i) crashes.push_back(pool.submit("segfault", ""));
  auto echo = pool.submit("echo", "still here");
  for (auto& f : crashes) {
    const auto e = error_of(f);
    ASSERT_TRUE(e);
    EXPECT_EQ(e->kind(), Kind::WorkerCrashed) << e->what();
    EXPECT_NE(std::string(e->what()).find("SIGSEGV"), std::string::npos) << e->what();
  }
  EXPECT_EQ(value_of(echo), "still here");
  const PoolMetrics m = pool.metrics();
  EXPECT_EQ(m.state, PoolMetrics::State::Running);
  EXPECT_EQ(m.restarts, 8u);
  EXPECT_EQ(m.failed, 8u);
  auto late = pool.submit("echo", "late");
  EXPECT_EQ(value_of(late), "late");
}

// Opt-in give-up: give_up_after broken starts in a row fail the pool. Here the program exits
// by itself while idle right after READY, every time (a broken start each time).
TEST_F(PoolFault, GiveUpAfterIsAnOptInThatFailsThePool) {
  PoolOptions options = crashy();
  options.args = {"--exit-after-ready", "20"};
  options.restart.give_up_after = 3;
  options.restart.crash_loop_after = 0;  // the constructor must not throw first
  Pool pool(options);
  ASSERT_TRUE(poll_until([&] { return pool.metrics().state == PoolMetrics::State::Failed; }))
      << pool.metrics().to_json();
  auto late = pool.submit("echo", "late");
  const auto rejected = error_of(late);
  ASSERT_TRUE(rejected);
  EXPECT_EQ(rejected->kind(), Kind::PoolFailed) << rejected->what();
  EXPECT_NE(std::string(rejected->what()).find("3 failures in a row"), std::string::npos)
      << rejected->what();
  EXPECT_NE(std::string(rejected->what()).find("exit code 3"), std::string::npos)
      << rejected->what();
}

// An idle worker SIGKILLed from outside, again and again, is restarted at once each time: the
// kill says nothing about the program, so the slot neither backs off nor fails.
TEST_F(PoolFault, IdleWorkerKilledFromOutsideIsRestartedAtOnceEveryTime) {
  PoolOptions options = crashy();
  options.restart.give_up_after = 2;  // would fail the pool if the kills counted
  Pool pool(options);
  for (int round = 0; round < 6; ++round) {
    const auto w = slot_metrics(pool);
    ASSERT_TRUE(w && w->pid > 0);
    ASSERT_EQ(::kill(w->pid, SIGKILL), 0);
    ASSERT_TRUE(poll_until([&] { return replaced_since(pool, w->incarnation); }))
        << "round " << round << ": " << pool.metrics().to_json();
    EXPECT_EQ(slot_metrics(pool)->consecutive_failures, 0u);
  }
  EXPECT_EQ(pool.metrics().state, PoolMetrics::State::Running);
  auto echo = pool.submit("echo", "fine");
  EXPECT_EQ(value_of(echo), "fine");
}

// ---------------------------------------------------------------------------------------------
// Retries and poison

TEST_F(PoolFault, TaskIsRetriedAfterItsWorkerCrashesWhenAttemptsRemain) {
  PoolOptions options = crashy();
  options.max_attempts = 2;
  Pool pool(options);

  auto first = pool.submit("attempt", "");
  EXPECT_EQ(value_of(first), "1");
  EXPECT_EQ(pool.metrics().retried, 0u);

  auto retried = pool.submit("crash_on_first_attempt", "survivor");
  EXPECT_EQ(value_of(retried), "survivor");
  const PoolMetrics m = pool.metrics();
  EXPECT_EQ(m.retried, 1u);
  EXPECT_EQ(m.restarts, 1u);
  EXPECT_EQ(m.failed, 0u);
}

TEST_F(PoolFault, PoisonTaskFailsAfterExactlyMaxAttemptsAndPoolStillServes) {
  Pool pool(crashy());
  const PoolMetrics before = pool.metrics();

  TaskOptions three;
  three.max_attempts = 3;
  auto poison = pool.submit("segfault", "", three);
  const auto error = error_of(poison);
  ASSERT_TRUE(error);
  EXPECT_EQ(error->kind(), Kind::WorkerCrashed) << error->what();
  const std::string what = error->what();
  EXPECT_NE(what.find("poison"), std::string::npos) << what;
  EXPECT_NE(what.find("all 3 attempts"), std::string::npos) << what;
  EXPECT_NE(what.find("SIGSEGV"), std::string::npos) << what;

  const PoolMetrics after = pool.metrics();
  EXPECT_EQ(after.restarts - before.restarts, 3u);
  EXPECT_EQ(after.retried - before.retried, 2u);
  EXPECT_EQ(after.failed - before.failed, 1u);

  auto next = pool.submit("echo", "after the poison");
  EXPECT_EQ(value_of(next), "after the poison");
  EXPECT_EQ(pool.metrics().state, PoolMetrics::State::Running);
}

// ---------------------------------------------------------------------------------------------
// Tasks on board of a crashed worker

TEST_F(PoolFault, TasksQueuedBehindACrashAreNeitherLostNorRunTwice) {
  PoolOptions options = crashy();
  options.pipeline_depth = 8;
  Pool pool(options);
  Callbacks callbacks;

  // All six go into the one worker's pipeline at once; the segfault runs first.
  pool.submit("segfault", "", {},
              [&callbacks](const TaskOutcome& o) { callbacks.record("segfault", o); });
  for (int i = 0; i < 5; ++i) {
    const std::string key = "echo-" + std::to_string(i);
    pool.submit("echo", key, {},
                [&callbacks, key](const TaskOutcome& o) { callbacks.record(key, o); });
  }
  callbacks.wait_for(6);
  bounded("wait_idle()", [&pool] { pool.wait_idle(); });

  EXPECT_EQ(callbacks.total(), 6u);
  EXPECT_EQ(callbacks.calls("segfault"), 1);
  const auto crash = callbacks.error("segfault");
  ASSERT_TRUE(crash);
  EXPECT_EQ(crash->kind(), Kind::WorkerCrashed) << crash->what();
  for (int i = 0; i < 5; ++i) {
    const std::string key = "echo-" + std::to_string(i);
    EXPECT_EQ(callbacks.calls(key), 1) << key;
    EXPECT_EQ(callbacks.value(key).value_or("<failed>"), key);
  }
  const PoolMetrics m = pool.metrics();
  EXPECT_EQ(m.completed, 5u);
  EXPECT_EQ(m.failed, 1u);
  EXPECT_EQ(m.restarts, 1u);
  EXPECT_EQ(m.retried, 0u);  // tasks that never started spend no attempt
}

TEST_F(PoolFault, TasksBehindACrashRunLaterAsTheirFirstAttempt) {
  PoolOptions options = crashy();
  options.pipeline_depth = 8;
  Pool pool(options);
  auto crash = pool.submit("segfault", "");
  std::vector<procpool::Future<std::string>> behind;
  for (int i = 0; i < 3; ++i) behind.push_back(pool.submit("attempt", ""));
  EXPECT_EQ(kind_of(crash), Kind::WorkerCrashed);
  for (auto& f : behind) EXPECT_EQ(value_of(f), "1");
}

}  // namespace
}  // namespace procpool::test
