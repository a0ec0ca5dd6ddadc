// The restart policy as the user observes it, with default options: the life-cycle events of a
// killed worker, an event callback that throws, and the per-slot counters that survive restarts.
//
// Every wait is bounded (pool_test_support.hpp); the life-cycle events are awaited through
// PoolOptions::on_event, never after a sleep. A watchdog bounds each test.

#include <gtest/gtest.h>
#include <signal.h>  // kill, SIGKILL

#include <chrono>     // durations
#include <future>     // std::future
#include <stdexcept>  // std::runtime_error
#include <string>     // std::string
#include <vector>     // std::vector

#include "pool_restart_support.hpp"
#include "pool_test_support.hpp"  // Watchdog, value_of, kind_of, poll_until, kBound
#include "procpool/pool.hpp"
#include "procpool/pool_event.hpp"

namespace procpool::test {
namespace {

using namespace std::chrono_literals;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;
using EventKind = PoolEvent::Kind;

constexpr milliseconds kTestBound = 110s;  // the whole test, destructors included

// ---------------------------------------------------------------------------------------------
// The event callback and the metrics

// A killed worker's life, as the callback sees it: started -> ready, then exited (naming the
// signal) -> restarting -> started -> ready for the next process of the same slot.
TEST(PoolRestart, EventsFollowAKilledWorkersLife) {
  Watchdog watchdog(kTestBound);
  EventLog log;
  PoolOptions options = pool_of("echo", 1);
  options.on_event = log.callback();
  Pool pool(options);
  const auto ready = log.wait_for(is(EventKind::WorkerReady, 0));
  ASSERT_TRUE(ready);
  const WorkerMetrics first = worker_in(pool, 0);
  std::vector<EventLog::Seen> seen = log.seen();
  ASSERT_EQ(seen.size(), 2u) << log.describe();
  EXPECT_EQ(seen[0].event.kind, EventKind::WorkerStarted);
  EXPECT_EQ(seen[0].event.pid, first.pid);
  EXPECT_EQ(seen[1].event.kind, EventKind::WorkerReady);
  EXPECT_EQ(seen[1].event.incarnation, first.incarnation);

  kill_worker(first.pid);
  ASSERT_TRUE(log.wait_for(is(EventKind::WorkerReady, 0), 2)) << log.describe();
  seen = log.seen();
  ASSERT_EQ(seen.size(), 6u) << log.describe();
  const PoolEvent& exited = seen[2].event;
  EXPECT_EQ(exited.kind, EventKind::WorkerExited);
  EXPECT_EQ(exited.pid, first.pid);
  EXPECT_EQ(exited.incarnation, first.incarnation);
  EXPECT_EQ(exited.signal, SIGKILL);
  EXPECT_EQ(exited.exit_code, -1);
  EXPECT_NE(exited.message.find("SIGKILL"), std::string::npos) << exited.message;
  const PoolEvent& restarting = seen[3].event;
  EXPECT_EQ(restarting.kind, EventKind::WorkerRestarting);
  EXPECT_LT(restarting.delay, RestartPolicy{}.initial_backoff);
  const PoolEvent& started = seen[4].event;
  EXPECT_EQ(started.kind, EventKind::WorkerStarted);
  EXPECT_GT(started.incarnation, first.incarnation);
  EXPECT_NE(started.pid, first.pid);
  EXPECT_EQ(seen[5].event.kind, EventKind::WorkerReady);
  EXPECT_EQ(seen[5].event.incarnation, started.incarnation);
  for (const EventLog::Seen& s : seen) EXPECT_EQ(s.event.slot, 0u);
  expect_serves(pool, 5, "after the restart ");
}

// A callback that throws on every event: caught and reported on stderr; the pool starts, serves,
// restarts a killed worker (the callback still sees every event) and serves again.
TEST(PoolRestart, ThrowingEventCallbackIsCaughtAndThePoolGoesOn) {
  Watchdog watchdog(kTestBound);
  EventLog log;
  PoolOptions options = pool_of("echo", 1);
  options.on_event = [&log](const PoolEvent& event) {
    log.record(event);
    throw std::runtime_error("on_event throws as asked");
  };
  ::testing::internal::CaptureStderr();
  std::string captured;
  {
    Pool pool(options);
    expect_serves(pool, 5, "before ");
    const WorkerMetrics first = worker_in(pool, 0);
    const std::size_t mark = log.size();
    kill_worker(first.pid);
    EXPECT_TRUE(log.wait_for(is_after(EventKind::WorkerReady, 0, first.incarnation), mark))
        << log.describe();
    expect_serves(pool, 5, "after ");
    EXPECT_EQ(pool.metrics().state, PoolMetrics::State::Running);
  }
  captured = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(captured.find("PoolOptions::on_event threw: on_event throws as asked"),
            std::string::npos)
      << captured;
}

// Per-slot counters add up over the slot's processes while the per-process ones start again;
// last_active_unix_s moves forward.
TEST(PoolRestart, PerSlotCountersSurviveRestarts) {
  Watchdog watchdog(kTestBound);
  EventLog log;
  PoolOptions options = pool_of("crashy", 1);
  options.on_event = log.callback();
  Pool pool(options);
  auto run = [&](int good, int bad) {
    std::vector<procpool::Future<std::string>> ok, failing;
    for (int i = 0; i < good; ++i) ok.push_back(pool.submit("echo", "x"));
    for (int i = 0; i < bad; ++i) failing.push_back(pool.submit("throw", "as asked"));
    for (auto& f : ok) EXPECT_EQ(value_of(f), "x");
    for (auto& f : failing) EXPECT_EQ(kind_of(f), TaskError::Kind::HandlerError);
  };
  run(20, 2);
  const WorkerMetrics before = worker_in(pool, 0);
  EXPECT_EQ(before.tasks_done, 20u);
  EXPECT_EQ(before.tasks_failed, 2u);
  EXPECT_EQ(before.slot_tasks_done, 20u);
  EXPECT_EQ(before.slot_tasks_failed, 2u);
  EXPECT_GT(before.last_active_unix_s, 0);

  const std::size_t mark = log.size();
  kill_worker(before.pid);
  ASSERT_TRUE(log.wait_for(is_after(EventKind::WorkerReady, 0, before.incarnation), mark))
      << log.describe(mark);
  const WorkerMetrics restarted = worker_in(pool, 0);
  EXPECT_GT(restarted.incarnation, before.incarnation);
  EXPECT_EQ(restarted.tasks_done, 0u);
  EXPECT_EQ(restarted.slot_tasks_done, 20u);
  EXPECT_EQ(restarted.slot_tasks_failed, 2u);

  run(15, 1);
  const WorkerMetrics after = worker_in(pool, 0);
  EXPECT_EQ(after.incarnation, restarted.incarnation);
  EXPECT_EQ(after.tasks_done, 15u);
  EXPECT_EQ(after.tasks_failed, 1u);
  EXPECT_EQ(after.slot_tasks_done, 35u);
  EXPECT_EQ(after.slot_tasks_failed, 3u);
  EXPECT_GT(after.last_active_unix_s, before.last_active_unix_s);
}

}  // namespace
}  // namespace procpool::test
