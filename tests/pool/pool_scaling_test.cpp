// Tests of how procpool::Pool scales: autoscaling between min_workers and max_workers (bursts,
// idle workers stopped, min_workers kept) and recycling after max_tasks_per_worker.
//
// Every wait is bounded (pool_test_support.hpp): futures and callbacks with a bound; a state the
// pool reaches by itself (a worker started or stopped) is polled through metrics() with a
// deadline. Nothing sleeps to wait for an event.

#include <gtest/gtest.h>

#include <algorithm>  // std::find
#include <atomic>     // std::atomic
#include <chrono>     // durations
#include <map>        // std::map
#include <memory>     // std::make_shared
#include <mutex>      // std::mutex
#include <optional>   // the warmed pool
#include <set>        // std::set
#include <string>     // std::string
#include <vector>     // std::vector

#include "pool_fixtures.hpp"
#include "pool_test_support.hpp"  // bounded waits, Callbacks, BlockedPool, the watchdog
#include "procpool/pool.hpp"
#include "test_timing.hpp"  // kTimingScale
#include "test_workers.hpp"

namespace procpool::test {
namespace {

using namespace std::chrono_literals;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

// Live workers (spawned and not yet reaped) in a metrics snapshot.
std::size_t live_workers(const PoolMetrics& m) {
  std::size_t live = 0;
  for (const WorkerMetrics& w : m.workers) live += w.pid > 0;
  return live;
}
std::size_t ready_workers(const PoolMetrics& m) {
  std::size_t ready = 0;
  for (const WorkerMetrics& w : m.workers) ready += w.state == WorkerMetrics::State::Ready;
  return ready;
}

// ---------------------------------------------------------------------------------------------
// Scaling and recycling

// The default depth, measured deep on tiny tasks, lets a burst of long tasks go straight into
// the one worker's ring, leaving the pool queue empty: the backlog behind its running task must
// still scale the pool up.
TEST_F(PoolScheduling, BurstIntoAWorkersPipelineScalesUpAtTheDefaultDepth) {
  PoolOptions options = small_pool("crashy", 1);
  options.max_workers = 2;
  // The warm-up itself may queue long enough to scale up, or measure the tasks too slow for a
  // deep pipeline, when the machine is slow (a sanitizer, or other jobs on both cores: seen on
  // 2 cores in a dev run beside a tsan run). Then there is nothing to show with that pool: try
  // a fresh one, a few times, before calling it a failure.
  std::optional<Pool> warmed;
  for (int attempt = 0; attempt < 3 && !warmed; ++attempt) {
    warmed.emplace(options);
    Pool& pool = *warmed;
    std::vector<std::string> tiny(4000, "x");
    std::vector<std::string_view> tiny_views(tiny.begin(), tiny.end());
    std::atomic<int> warm{0};
    pool.submit_batch("echo", tiny_views, {}, [&](std::size_t, const TaskOutcome&) { ++warm; });
    bounded("wait_idle()", [&pool] { pool.wait_idle(); });
    ASSERT_EQ(warm.load(), 4000);
    if (live_workers(pool.metrics()) != 1 || pool.metrics().workers.at(0).pipeline_depth < 8) {
      warmed.reset();
    }
  }
  if (!warmed && kTimingScale > 1) GTEST_SKIP() << "the sanitizer-slowed warm-ups scaled up";
  ASSERT_TRUE(warmed) << "three warm-ups of 4000 tiny tasks each scaled up or stayed shallow";
  Pool& pool = *warmed;

  const std::vector<std::string_view> burst(6, "300");
  Callbacks log;
  pool.submit_batch("sleep", burst, {},
                    [&](std::size_t, const TaskOutcome& o) { log.recorder("slept")(o); });
  EXPECT_TRUE(poll_until([&] { return ready_workers(pool.metrics()) == 2; }))
      << "a backlog inside the worker's pipeline did not scale the pool up: "
      << pool.metrics().to_json();
  EXPECT_EQ(log.wait_for(6), std::vector<std::string>(6, "slept"));
}

// A fresh worker's first task may be long: short tasks must not queue behind it in its ring
// (where no new worker could take them), but wait in the pool's queue, which scales the pool up.
TEST_F(PoolScheduling, ShortTasksDoNotQueueBehindALongFirstTaskOnAFreshWorker) {
  PoolOptions options = small_pool("crashy", 1);
  options.max_workers = 2;
  Pool pool(options);
  auto cancel = std::make_shared<CancelSource>();
  auto long_task = pool.submit("sleep", "30000", cancellable_by(cancel));
  Callbacks log;
  for (int i = 0; i < 3; ++i) pool.submit("echo", "short", {}, log.recorder("short"));
  const std::vector<std::string> answers = log.wait_for(3, 10s);
  cancel->cancel();
  EXPECT_EQ(answers, std::vector<std::string>(3, "short"))
      << "short tasks waited behind the long one: " << pool.metrics().to_json();
  EXPECT_EQ(kind_of(long_task), TaskError::Kind::Cancelled);
}

TEST_F(PoolScheduling, BurstScalesUpToMaxWorkersAndIdleScalesBackToMinWorkers) {
  PoolOptions options = small_pool("crashy", 1);
  options.min_workers = 1;
  options.max_workers = 2;
  options.pipeline_depth = 1;  // otherwise the first worker's pipeline absorbs the burst
  options.idle_timeout = 300ms;
  options.spawn_interval = 10ms;
  Pool pool(options);
  ASSERT_EQ(live_workers(pool.metrics()), 1u);

  constexpr std::size_t kBurst = 6;
  Callbacks log;
  for (std::size_t i = 0; i < kBurst; ++i) pool.submit("sleep", "300", {}, log.recorder("slept"));

  std::set<int> pids_under_load;
  EXPECT_TRUE(poll_until([&] {
    const PoolMetrics m = pool.metrics();
    if (ready_workers(m) < 2) return false;
    for (const WorkerMetrics& w : m.workers) pids_under_load.insert(w.pid);
    return true;
  })) << "the pool did not grow to 2 ready workers under a burst";
  EXPECT_LE(live_workers(pool.metrics()), 2u) << "more workers than max_workers";

  const std::vector<std::string> results = log.wait_for(kBurst);
  EXPECT_EQ(results, std::vector<std::string>(kBurst, "slept"));

  EXPECT_TRUE(poll_until([&] {
    const PoolMetrics now = pool.metrics();
    return live_workers(now) == 1 && ready_workers(now) == 1;
  })) << "the pool did not shrink back to min_workers after idle_timeout";
  const PoolMetrics m = pool.metrics();
  EXPECT_EQ(m.workers.size(), 1u);
  EXPECT_EQ(m.restarts, 0u) << "scaling down is not a crash";
  // The pool still serves, with the remaining worker.
  auto after = pool.submit("pid", "");
  const int pid = std::stoi(value_of(after));
  std::string seen;
  for (const int p : pids_under_load) seen += std::to_string(p) + " ";
  EXPECT_EQ(pids_under_load.count(pid), 1u)
      << "pid " << pid << " was not among the workers under load: " << seen
      << "; metrics after shrinking: " << m.to_json() << "; now: " << pool.metrics().to_json();
}

// Two workers that go idle at the same moment: scaling down stops one of them and must keep
// the other (min_workers = 1), however long the stopped one takes to exit. The check is the
// worker pids: a pool that stopped both would have to start a new worker to get back to
// min_workers, and the next task would run on a pid never seen before.
TEST_F(PoolScheduling, ScalingDownTwoWorkersIdleAtOnceKeepsMinWorkersRunning) {
  PoolOptions options = small_pool("crashy", 1);
  options.min_workers = 1;
  options.max_workers = 2;
  options.pipeline_depth = 1;
  options.idle_timeout = 200ms;
  options.spawn_interval = 1ms;
  // While tasks are on board the supervisor thread wakes once per heartbeat interval: at 1 ms it
  // looks at the pool again while a stopped worker is still exiting (a worker is hung only after
  // 1000 misses).
  options.heartbeat_interval = 1ms;
  options.heartbeat_misses = 1000;
  Pool pool(options);
  constexpr int kCycles = 4;
  for (int cycle = 0; cycle < kCycles; ++cycle) {
    // Grow to two workers: a task per worker, the second one queued until the pool scales up.
    Callbacks grow;
    pool.submit("sleep", "50", {}, grow.recorder("slept"));
    pool.submit("sleep", "50", {}, grow.recorder("slept"));
    ASSERT_TRUE(poll_until([&] { return ready_workers(pool.metrics()) == 2; }))
        << "cycle " << cycle << ": the pool did not grow to 2 workers";
    ASSERT_EQ(grow.wait_for(2), std::vector<std::string>(2, "slept"));

    // Make both finish together: one short task each, in one batch (least-loaded dispatch
    // gives each idle worker one), so they go idle within a millisecond of each other.
    std::set<int> pids;
    for (const WorkerMetrics& w : pool.metrics().workers) pids.insert(w.pid);
    ASSERT_EQ(pids.size(), 2u);
    const std::vector<std::string_view> payloads = {"20", "20"};
    std::mutex mutex;
    std::vector<std::string> results;
    pool.submit_batch("sleep", payloads, {}, [&](std::size_t, const TaskOutcome& o) {
      std::lock_guard lock(mutex);
      results.push_back(o.ok() ? std::string(o.value()) : std::string(o.error()->what()));
    });
    bounded("wait_idle()", [&pool] { pool.wait_idle(); });
    {
      std::lock_guard lock(mutex);
      EXPECT_EQ(results, std::vector<std::string>(2, "slept"));
    }

    // Back to one worker, one of the two seen: not zero, and no replacement started.
    const auto settled = [&] {
      const PoolMetrics now = pool.metrics();
      return now.workers.size() == 1 && now.workers[0].state == WorkerMetrics::State::Ready;
    };
    ASSERT_TRUE(poll_until(settled))
        << "cycle " << cycle << ": the pool did not settle at 1 worker";
    const PoolMetrics m = pool.metrics();
    EXPECT_EQ(pids.count(m.workers[0].pid), 1u)
        << "cycle " << cycle << ": both idle workers were stopped and a new one (pid "
        << m.workers[0].pid << ") started to get back to min_workers; metrics " << m.to_json();
    EXPECT_EQ(m.restarts, 0u);
  }
}

TEST_F(PoolScheduling, WorkerIsRecycledAfterMaxTasksPerWorkerAndEveryTaskStillSucceeds) {
  PoolOptions options = small_pool("crashy", 1);
  options.max_tasks_per_worker = 5;  // jitter is up to +10%: 5 + 0
  Pool pool(options);
  std::vector<int> pids;
  for (int i = 0; i < 30; ++i) {
    auto f = pool.submit("pid", "");
    pids.push_back(std::stoi(value_of(f)));
  }
  std::map<int, int> served;
  for (const int pid : pids) ++served[pid];
  EXPECT_GE(served.size(), 2u) << "the worker was never recycled";
  EXPECT_GE(served.size(), 6u) << "30 tasks at 5 per worker need 6 workers";
  for (const auto& [pid, count] : served) {
    EXPECT_LE(count, 5) << "worker " << pid << " served more than max_tasks_per_worker";
  }
  // A recycled worker never comes back: each pid serves one contiguous run.
  for (std::size_t i = 1; i < pids.size(); ++i) {
    if (pids[i] != pids[i - 1]) {
      EXPECT_EQ(std::find(pids.begin(), pids.begin() + static_cast<long>(i), pids[i]),
                pids.begin() + static_cast<long>(i))
          << "pid " << pids[i] << " served again after it was replaced";
    }
  }
  const PoolMetrics m = pool.metrics();
  EXPECT_EQ(m.completed, 30u);
  EXPECT_EQ(m.failed, 0u);
  EXPECT_EQ(m.restarts, 0u) << "recycling is not a crash";
}

}  // namespace
}  // namespace procpool::test
