// Fault tests of procpool::Pool: task timeouts (the hung worker is killed, retries), and
// cancellation (queued, cooperative, and past cancel_grace), with real worker processes (the
// crashy example worker).
//
// Every wait is bounded (pool_test_support.hpp): futures and callbacks with a bound, states the
// pool reaches by itself polled with a bound (poll_until), and a per-test watchdog for the rest.
// Sleeping inside a worker handler ("sleep") is part of a scenario, not synchronisation.

#include <gtest/gtest.h>
#include <sys/syscall.h>  // SYS_clock_nanosleep, SYS_nanosleep

#include <chrono>  // durations
#include <memory>  // std::make_shared
#include <string>  // std::string

#include "pool_fault_support.hpp"
#include "pool_test_support.hpp"  // bounded waits, Callbacks, poll_until, /proc readings, watchdog
#include "procpool/pool.hpp"
#include "test_timing.hpp"  // scaled

namespace procpool::test {
namespace {

using namespace std::chrono_literals;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;
using Kind = TaskError::Kind;

// ---------------------------------------------------------------------------------------------
// Timeouts

TEST_F(PoolFault, TimeoutKillsHungWorkerAndFailsTaskWithTimeout) {
  Pool pool(crashy());
  const int victim = pid_of(pool);
  TaskOptions timeout;
  timeout.timeout = 200ms;
  const auto submitted = Clock::now();
  auto hang = pool.submit("hang", "", timeout);
  const Outcome out = outcome_of(hang);
  ASSERT_TRUE(out.error) << out.describe();
  EXPECT_EQ(out.error->kind(), Kind::Timeout) << out.error->what();
  EXPECT_EQ(out.error->worker_pid(), victim);
  const std::string what = out.error->what();
  EXPECT_NE(what.find("timed out after 200 ms"), std::string::npos) << what;
  EXPECT_GE(Clock::now() - submitted, 200ms);

  const int successor = pid_of(pool);
  EXPECT_GT(successor, 0);
  EXPECT_NE(successor, victim);
  EXPECT_EQ(pool.metrics().restarts, 1u);
}

TEST_F(PoolFault, TimeoutWithTwoAttemptsRetriesOnceThenFailsTimeout) {
  Pool pool(crashy());
  const PoolMetrics before = pool.metrics();
  TaskOptions options;
  options.timeout = 200ms;
  options.max_attempts = 2;
  const auto submitted = Clock::now();
  auto hang = pool.submit("hang", "", options);
  const Outcome out = outcome_of(hang);
  ASSERT_TRUE(out.error) << out.describe();
  EXPECT_EQ(out.error->kind(), Kind::Timeout) << out.error->what();
  const std::string what = out.error->what();
  EXPECT_NE(what.find("all 2 attempts"), std::string::npos) << what;
  EXPECT_NE(what.find("timed out after 200 ms"), std::string::npos) << what;
  EXPECT_GE(Clock::now() - submitted, 400ms);  // two dispatches, each cut off at 200 ms

  const PoolMetrics after = pool.metrics();
  EXPECT_EQ(after.retried - before.retried, 1u);
  EXPECT_EQ(after.restarts - before.restarts, 2u);
  auto next = pool.submit("echo", "next");
  EXPECT_EQ(value_of(next), "next");
}

// ---------------------------------------------------------------------------------------------
// Cancellation

TEST_F(PoolFault, CancelledQueuedTaskFailsCancelledAndNeverRuns) {
  PoolOptions options = crashy();
  options.pipeline_depth = 1;  // the second task has to wait in the pool's queue
  Pool pool(options);
  auto busy = pool.submit("sleep", "500");

  auto cancel = std::make_shared<CancelSource>();
  auto queued = pool.submit("stderr", "the cancelled task ran\n", cancellable_by(cancel));
  EXPECT_EQ(pool.metrics().queued, 1u);
  cancel->cancel();
  const auto error = error_of(queued);
  ASSERT_TRUE(error);
  EXPECT_EQ(error->kind(), Kind::Cancelled) << error->what();
  EXPECT_EQ(error->worker_pid(), 0);  // no worker was involved
  EXPECT_EQ(value_of(busy), "slept");

  // Never dispatched: two dispatches in all (the sleep and this one).
  auto after = pool.submit("echo", "after");
  EXPECT_EQ(value_of(after), "after");
  EXPECT_EQ(pool.metrics().queue_wait.count, 2u);
  // Never ran: the worker's stderr (shown in a crash report) does not have its line.
  auto crash = pool.submit("segfault", "");
  const auto crash_error = error_of(crash);
  ASSERT_TRUE(crash_error);
  const std::string report = crash_error->what();
  EXPECT_EQ(report.find("the cancelled task ran"), std::string::npos) << report;
}

TEST_F(PoolFault, CancelledCooperativeRunningTaskResolvesPromptlyAndKeepsWorker) {
  PoolOptions options = crashy();
  options.cancel_grace = 60s;  // only the handler's own return can free the worker in time
  Pool pool(options);
  const int worker = pid_of(pool);

  auto cancel = std::make_shared<CancelSource>();
  auto sleeping = pool.submit("sleep", "10000", cancellable_by(cancel));
  // Running: the worker's main thread is in the handler's sleep (an idle worker waits on a
  // futex or yields instead).
  ASSERT_TRUE(poll_until([&] {
    const long call = current_syscall(worker);
    return call == SYS_clock_nanosleep || call == SYS_nanosleep;
  })) << "the sleep handler did not start";

  const auto cancelled_at = Clock::now();
  cancel->cancel();
  const Outcome out = outcome_of(sleeping);
  ASSERT_TRUE(out.error) << out.describe();
  EXPECT_EQ(out.error->kind(), Kind::Cancelled) << out.error->what();
  EXPECT_EQ(out.error->worker_pid(), worker);
  EXPECT_LT(Clock::now() - cancelled_at, scaled(1s));

  // The handler saw Task::cancelled() and returned: the same worker serves the next task, long
  // before the sleep's 10 s or cancel_grace.
  const int next = pid_of(pool);
  EXPECT_EQ(next, worker);
  EXPECT_LT(Clock::now() - cancelled_at, 3s);
  const PoolMetrics m = pool.metrics();
  EXPECT_EQ(m.restarts, 0u);
  EXPECT_EQ(m.workers.at(0).pid, worker);
}

TEST_F(PoolFault, CancelledHungTaskResolvesAtOnceAndWorkerIsReplacedAfterGrace) {
  PoolOptions options = crashy();
  options.cancel_grace = 200ms;
  Pool pool(options);
  const int worker = pid_of(pool);
  const std::uint64_t incarnation = slot_metrics(pool)->incarnation;

  auto cancel = std::make_shared<CancelSource>();
  Callbacks callbacks;
  pool.submit("hang", "", cancellable_by(cancel),
              [&callbacks](const TaskOutcome& o) { callbacks.record("hang", o); });
  ASSERT_TRUE(wait_until_spinning(worker)) << "the hang handler did not start";
  const auto cancelled_at = Clock::now();
  cancel->cancel();
  // At once: resolved by the time cancel() returns, not after the grace.
  EXPECT_EQ(callbacks.total(), 1u);
  callbacks.wait_for(1);
  const auto error = callbacks.error("hang");
  ASSERT_TRUE(error) << "the cancelled task succeeded";
  EXPECT_EQ(error->kind(), Kind::Cancelled) << error->what();
  EXPECT_EQ(error->worker_pid(), worker);

  // "hang" never looks at Task::cancelled(): after cancel_grace the worker is killed.
  ASSERT_TRUE(poll_until([&] { return replaced_since(pool, incarnation); }))
      << "the hung worker was not replaced";
  EXPECT_GE(Clock::now() - cancelled_at, 200ms);
  const int successor = pid_of(pool);
  EXPECT_NE(successor, worker);
  EXPECT_EQ(pool.metrics().restarts, 1u);
}

// A task dispatched behind a cancelled task that hangs never starts; when the worker is killed
// after cancel_grace, that task must go back to the queue (like any task that never started,
// docs/pool.md "Tasks on board"), not be failed as if it had been running.
TEST_F(PoolFault, TaskBehindCancelledHungTaskSurvivesTheGraceKill) {
  PoolOptions options = crashy();
  options.cancel_grace = 200ms;
  Pool pool(options);
  const int worker = pid_of(pool);

  auto cancel = std::make_shared<CancelSource>();
  auto hang = pool.submit("hang", "", cancellable_by(cancel));
  ASSERT_TRUE(wait_until_spinning(worker)) << "the hang handler did not start";
  cancel->cancel();
  EXPECT_EQ(kind_of(hang), Kind::Cancelled);

  // Dispatched at once onto the same (busy, hung) worker's pipeline.
  auto behind = pool.submit("pid", "");
  const Outcome out = outcome_of(behind);
  ASSERT_TRUE(out.value) << "the task behind the cancelled one failed: " << out.describe();
  EXPECT_NE(std::stoi(*out.value), worker);
}

}  // namespace
}  // namespace procpool::test
