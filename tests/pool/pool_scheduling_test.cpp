// Tests of how procpool::Pool schedules: priorities (FIFO within a level, High before Normal
// before Low, and the bound on how long Low can be passed over), per-task timeouts (running vs
// waiting in a worker's pipeline, counted from dispatch), and least-loaded dispatch with the
// adaptive pipeline depth.
//
// Ordering tests are made deterministic with a "blocker": a long crashy "sleep" task that
// occupies the only worker (pipeline_depth 1) while the test queues tasks, and that the test
// ends by cancelling it, so nothing depends on how long the test thread takes to submit.
//
// Every wait is bounded: pool futures are std::launch::deferred, so get() runs on a std::async
// thread waited for with a bound; callbacks are awaited on a condition variable with a bound; a
// state the pool reaches by itself (a worker started or stopped) is polled through metrics()
// with a deadline. Overrunning a bound aborts the process with a message (CTest runs each TEST
// in its own process). Nothing sleeps to wait for an event.

#include <gtest/gtest.h>

#include <algorithm>           // std::find
#include <chrono>              // durations
#include <condition_variable>  // std::condition_variable
#include <future>              // std::async
#include <memory>              // std::make_shared
#include <mutex>               // std::mutex
#include <optional>            // std::optional
#include <string>              // std::string
#include <vector>              // std::vector

#include "pool_fixtures.hpp"
#include "pool_test_support.hpp"  // bounded waits, Callbacks, BlockedPool, the watchdog
#include "procpool/pool.hpp"
#include "task_queue.hpp"   // detail::TaskQueue::kMaxBypass
#include "test_timing.hpp"  // kTimingScale
#include "test_workers.hpp"

namespace procpool::test {
namespace {

using namespace std::chrono_literals;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

TaskOptions with_priority(Priority priority) {
  TaskOptions options;
  options.priority = priority;
  return options;
}

// ---------------------------------------------------------------------------------------------
// Priorities

TEST_F(PoolScheduling, QueuedTasksRunHighThenNormalThenLowAndFifoWithinALevel) {
  BlockedPool blocked;
  Pool& pool = blocked.pool();
  Callbacks log;
  // Submitted lowest first, interleaved, so neither submission order nor level order alone
  // explains the result.
  const std::vector<std::pair<std::string, Priority>> tasks = {
      {"low-1", Priority::Low},       {"normal-1", Priority::Normal}, {"high-1", Priority::High},
      {"low-2", Priority::Low},       {"normal-2", Priority::Normal}, {"high-2", Priority::High},
      {"normal-3", Priority::Normal}, {"high-3", Priority::High},
  };
  for (const auto& [label, priority] : tasks) {
    pool.submit("echo", label, with_priority(priority), log.recorder(label));
  }
  ASSERT_EQ(pool.metrics().queued, tasks.size()) << "the blocker did not hold the queue";
  blocked.release();
  EXPECT_EQ(log.wait_for(tasks.size()),
            (std::vector<std::string>{"high-1", "high-2", "high-3", "normal-1", "normal-2",
                                      "normal-3", "low-1", "low-2"}));
}

TEST_F(PoolScheduling, LowPriorityTaskIsServedWithinKMaxBypassPlusOneDispatchesUnderHighLoad) {
  static_assert(detail::TaskQueue::kMaxBypass == 7, "the test's expectation below assumes 7");
  BlockedPool blocked;
  Pool& pool = blocked.pool();
  Callbacks log;
  pool.submit("echo", "low", with_priority(Priority::Low), log.recorder("low"));
  constexpr int kHigh = 20;
  for (int i = 0; i < kHigh; ++i) {
    const std::string label = "high-" + std::to_string(i);
    pool.submit("echo", label, with_priority(Priority::High), log.recorder(label));
  }
  ASSERT_EQ(pool.metrics().queued, static_cast<std::uint64_t>(kHigh + 1));
  blocked.release();
  const std::vector<std::string> order = log.wait_for(kHigh + 1);
  const auto low = std::find(order.begin(), order.end(), "low");
  ASSERT_NE(low, order.end()) << "the Low task never completed";
  const auto position = low - order.begin();
  EXPECT_LE(position, static_cast<long>(detail::TaskQueue::kMaxBypass))
      << "Low waited behind " << position << " High tasks (bound: kMaxBypass = 7)";
  // It is passed over exactly kMaxBypass times: High still goes first while allowed.
  EXPECT_EQ(position, static_cast<long>(detail::TaskQueue::kMaxBypass));
  // The High tasks kept their FIFO order around it.
  std::vector<std::string> highs;
  for (const std::string& label : order) {
    if (label != "low") highs.push_back(label);
  }
  std::vector<std::string> expected_highs;
  for (int i = 0; i < kHigh; ++i) expected_highs.push_back("high-" + std::to_string(i));
  EXPECT_EQ(highs, expected_highs);
}

TEST_F(PoolScheduling, NormalPriorityIsNotStarvedByAStreamOfHighEither) {
  BlockedPool blocked;
  Pool& pool = blocked.pool();
  Callbacks log;
  for (int i = 0; i < 10; ++i) {
    const std::string label = "high-" + std::to_string(i);
    pool.submit("echo", label, with_priority(Priority::High), log.recorder(label));
  }
  pool.submit("echo", "normal", with_priority(Priority::Normal), log.recorder("normal"));
  blocked.release();
  const std::vector<std::string> order = log.wait_for(11);
  const auto position = std::find(order.begin(), order.end(), "normal") - order.begin();
  EXPECT_LE(position, static_cast<long>(detail::TaskQueue::kMaxBypass));
}

// ---------------------------------------------------------------------------------------------
// Timeouts

// A task's timeout counts from its start. A timed-out running task gets its worker killed; a
// task with a shorter timeout waiting behind it in the worker's pipeline has not started, so it
// does not time out there: it runs on the replacement worker, as does a task behind both.
void expect_timeout_counts_from_start(unsigned pipeline_depth) {
  PoolOptions options = small_pool("crashy", 1);
  options.pipeline_depth = pipeline_depth;
  Pool pool(options);
  auto first_pid = pool.submit("pid", "");
  const int pid = std::stoi(value_of(first_pid));

  TaskOptions running_options;
  running_options.timeout = 400ms;
  auto running = pool.submit("sleep", "20000", running_options);
  TaskOptions waiting_options;
  waiting_options.timeout = 100ms;
  auto waiting = pool.submit("echo", "waiting", waiting_options);
  auto survivor = pool.submit("echo", "survivor");
  if (pipeline_depth == 3) {
    const PoolMetrics m = pool.metrics();
    ASSERT_EQ(m.workers.size(), 1u);
    ASSERT_EQ(m.workers[0].inflight, 3u) << "all three should be in the worker's pipeline";
  }

  const auto running_error = error_of(running);
  ASSERT_TRUE(running_error);
  EXPECT_EQ(running_error->kind(), TaskError::Kind::Timeout) << running_error->what();
  EXPECT_EQ(running_error->worker_pid(), pid);
  EXPECT_NE(std::string(running_error->what()).find("timed out after 400 ms"), std::string::npos)
      << running_error->what();

  EXPECT_EQ(value_of(waiting), "waiting");
  EXPECT_EQ(value_of(survivor), "survivor");
  auto after = pool.submit("pid", "");
  const int replacement = std::stoi(value_of(after));
  EXPECT_NE(replacement, pid) << "the worker running the timed-out task was not replaced";
  const PoolMetrics m = pool.metrics();
  EXPECT_EQ(m.state, PoolMetrics::State::Running);
  EXPECT_EQ(m.completed, 4u);  // pid, waiting, survivor, pid
  EXPECT_EQ(m.failed, 1u);     // the running task's timeout
  EXPECT_EQ(m.retried, 0u);    // the waiting tasks never started on the killed worker
}

TEST_F(PoolScheduling, TimeoutCountsFromStartNotWhileWaitingInAWorkersPipeline) {
  expect_timeout_counts_from_start(3);
}

TEST_F(PoolScheduling, TimeoutCountsFromStartAtTheDefaultDepth) {
  expect_timeout_counts_from_start(0);
}

// The worker is busy for 1 s; the task waits that long in the pool's queue (or in the worker's
// pipeline, at the default depth), far beyond its 300 ms timeout, but its clock starts only
// when it starts.
void expect_timeout_not_counted_while_queued(unsigned pipeline_depth) {
  PoolOptions options = small_pool("crashy", 1);
  options.pipeline_depth = pipeline_depth;
  Pool pool(options);
  auto busy = pool.submit("sleep", "1000");
  TaskOptions timed;
  timed.timeout = 300ms;
  auto queued = pool.submit("echo", "made it", timed);
  if (pipeline_depth == 1) {
    ASSERT_EQ(pool.metrics().queued, 1u);
  }
  EXPECT_EQ(value_of(queued), "made it");
  EXPECT_EQ(value_of(busy), "slept");
}

TEST_F(PoolScheduling, TimeoutIsCountedFromDispatchNotFromSubmission) {
  expect_timeout_not_counted_while_queued(1);
}

// The default depth: a fresh worker takes one task until it has answered one, so the echo
// waits in the queue; either way its timeout has not started.
TEST_F(PoolScheduling, TimeoutIsNotCountedWhileQueuedAtTheDefaultDepth) {
  expect_timeout_not_counted_while_queued(0);
}

// ---------------------------------------------------------------------------------------------
// Dispatch

TEST_F(PoolScheduling, TwoLongTasksSubmittedTogetherRunOnDifferentWorkers) {
  Pool pool(small_pool("crashy", 2));  // default pipeline_depth: both could fit one worker
  auto cancel = std::make_shared<CancelSource>();
  const TaskOptions options = cancellable_by(cancel);
  auto first = pool.submit("sleep", "30000", options);
  auto second = pool.submit("sleep", "30000", options);

  // Both are on board for 30 s: the snapshot is stable.
  const PoolMetrics m = pool.metrics();
  ASSERT_EQ(m.workers.size(), 2u);
  for (const WorkerMetrics& w : m.workers) {
    EXPECT_EQ(w.inflight, 1u) << "worker " << w.slot << " (pid " << w.pid << ")";
  }

  cancel->cancel();
  const auto first_error = error_of(first);
  const auto second_error = error_of(second);
  ASSERT_TRUE(first_error);
  ASSERT_TRUE(second_error);
  EXPECT_EQ(first_error->kind(), TaskError::Kind::Cancelled);
  EXPECT_EQ(second_error->kind(), TaskError::Kind::Cancelled);
  EXPECT_GT(first_error->worker_pid(), 0);
  EXPECT_GT(second_error->worker_pid(), 0);
  EXPECT_NE(first_error->worker_pid(), second_error->worker_pid())
      << "both long tasks were given to the same worker";
}

TEST_F(PoolScheduling, ShortTaskGoesToTheIdleWorkerNotBehindALongOne) {
  Pool pool(small_pool("crashy", 2));
  auto cancel = std::make_shared<CancelSource>();
  auto long_task = pool.submit("sleep", "30000", cancellable_by(cancel));
  int busy_pid = 0;
  for (const WorkerMetrics& w : pool.metrics().workers) {
    if (w.inflight == 1) busy_pid = w.pid;
  }
  ASSERT_GT(busy_pid, 0) << "the long task is on no worker";

  // Each answers at once, from the idle worker, while the long task still runs. One queued
  // behind the long task would not answer before the test cancels the long task.
  for (int i = 0; i < 5; ++i) {
    std::mutex mutex;
    std::condition_variable answered;
    std::optional<std::string> answer;
    pool.submit("pid", "", {}, [&](const TaskOutcome& o) {
      std::lock_guard lock(mutex);
      answer = o.ok() ? std::string(o.value()) : "error: " + std::string(o.error()->what());
      answered.notify_all();
    });
    std::unique_lock lock(mutex);
    const bool in_time = answered.wait_for(lock, 10s, [&] { return answer.has_value(); });
    lock.unlock();
    if (!in_time) {
      ADD_FAILURE() << "a short task was queued behind the long one";
      cancel->cancel();  // lets it run; wait_idle() makes sure the callback is done with locals
      bounded("wait_idle()", [&pool] { pool.wait_idle(); });
      break;
    }
    EXPECT_NE(std::stoi(*answer), busy_pid) << "a short task ran on the busy worker";
  }
  cancel->cancel();
  const auto error = error_of(long_task);
  ASSERT_TRUE(error);
  EXPECT_EQ(error->kind(), TaskError::Kind::Cancelled);
  EXPECT_EQ(error->worker_pid(), busy_pid);
}

// The default pipeline depth adapts to the worker's time per task: deep after a run of tiny
// tasks (throughput), one task on board once tasks take several milliseconds (balance). Before
// any measurement it is one: a first task may be long.
TEST_F(PoolScheduling, AdaptivePipelineIsDeepForTinyTasksAndShallowForLongOnes) {
  Pool pool(small_pool("crashy", 1));
  ASSERT_EQ(pool.metrics().workers.at(0).pipeline_depth, 1u) << "before any measurement";

  std::vector<std::string> inputs(20'000, "x");
  const std::vector<std::string_view> payloads(inputs.begin(), inputs.end());
  Callbacks tiny;
  pool.submit_batch("echo", payloads, {}, [&](std::size_t, const TaskOutcome& o) {
    EXPECT_TRUE(o.ok());
    tiny.add();
  });
  tiny.wait_for(payloads.size());
  bounded("wait_idle()", [&pool] { pool.wait_idle(); });
  // Depth 1 + 1 ms / time per task: deeper than 32 means under about 31 us per echo, a few
  // times what a plain build measures; a sanitizer build's slower echo gets the scaled bound.
  const unsigned deep = pool.metrics().workers.at(0).pipeline_depth;
  EXPECT_GT(deep, 32u / kTimingScale) << "tiny tasks: the depth should have grown";

  // 5 ms tasks: the time-per-task average moves to them within a few dozen answers.
  for (int i = 0; i < 40; ++i) {
    auto slept = pool.submit("sleep", "5");
    EXPECT_EQ(value_of(slept), "slept");
  }
  EXPECT_EQ(pool.metrics().workers.at(0).pipeline_depth, 1u) << "after tiny ones: " << deep;
}

}  // namespace
}  // namespace procpool::test
