// The restart policy with default options (issue 10, "The restart policy ends the pool for good"):
// external kills while tasks run and poison tasks spread among good ones are the tasks' problem,
// and a program that falls over right after READY backs off within the bounds (CrashLoop,
// give_up_after). Each test sets only the option it is about (and the worker count it needs).
//
// Every wait is bounded (pool_test_support.hpp); the life-cycle events are awaited through
// PoolOptions::on_event, never after a sleep. A watchdog bounds each test.

#include <gtest/gtest.h>
#include <signal.h>  // kill, SIGKILL

#include <algorithm>  // std::max
#include <chrono>     // durations
#include <cstdint>    // std::uint64_t
#include <future>     // std::future
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
// Deaths with tasks on board are the tasks' problem

// A worker SIGKILLed from outside, again and again (each within a second of its READY, the old
// "start-up failure"), while tasks run: each death is charged to the task it was running and the
// worker comes back at once. The pool never fails, and every task succeeds within its attempts.
TEST(PoolRestart, RepeatedExternalKillsWhileTasksRunNeverFailThePool) {
  Watchdog watchdog(kTestBound);
  EventLog log;
  PoolOptions options = pool_of("crashy", 2);
  options.max_attempts = 6;
  options.on_event = log.callback();
  Pool pool(options);
  constexpr int kKills = 12;  // six per slot: more than the old limit of five in a row
  constexpr int kTasksPerKill = 100;
  int ok = 0;
  for (int kill = 0; kill < kKills; ++kill) {
    const unsigned slot = static_cast<unsigned>(kill % 2);
    std::vector<procpool::Future<std::string>> futures;
    for (int i = 0; i < kTasksPerKill; ++i) futures.push_back(pool.submit("sleep", "2"));
    WorkerMetrics target;
    ASSERT_TRUE(poll_until([&] {
      target = worker_in(pool, slot);
      return target.state == WorkerMetrics::State::Ready && target.pid > 0 && target.inflight > 0;
    })) << "kill "
        << kill << ": slot " << slot << " never had tasks on board";
    const std::size_t mark = log.size();
    kill_worker(target.pid);
    ASSERT_TRUE(log.wait_for(
        [&](const PoolEvent& e) {
          return e.kind == EventKind::WorkerReady && e.slot == slot &&
                 e.incarnation > target.incarnation;
        },
        mark))
        << "kill " << kill << ": slot " << slot
        << " did not come back; events: " << log.describe(mark);
    ASSERT_EQ(pool.metrics().state, PoolMetrics::State::Running) << "after kill " << kill;
    // This round's tasks done before the next kill: the task charged for this one has run again
    // by then, so no task meets more than one kill (one attempt of six).
    for (auto& future : futures) ok += value_of(future) == "slept";
  }
  EXPECT_EQ(ok, kKills * kTasksPerKill);
  const PoolMetrics metrics = pool.metrics();
  EXPECT_EQ(metrics.state, PoolMetrics::State::Running);
  EXPECT_GE(metrics.restarts, static_cast<std::uint64_t>(kKills));
  expect_serves(pool, 10, "after the kills ");
}

// Crashing tasks far apart among good ones, with the default max_attempts (1): each crash is its
// task's failure alone. Every crashing task fails WorkerCrashed, every good task succeeds, and the
// pool keeps serving (the old policy stopped it after five of them within seconds).
TEST(PoolRestart, PoisonTasksSpreadAmongGoodOnesFailAloneAndThePoolServes) {
  Watchdog watchdog(kTestBound);
  Pool pool(pool_of("crashy", 2));
  constexpr int kPoison = 12, kGoodBetween = 200;
  std::vector<procpool::Future<std::string>> poison, good;
  std::vector<std::string> keys;
  for (int p = 0; p <= kPoison; ++p) {
    for (int i = 0; i < kGoodBetween; ++i) {
      keys.push_back(std::to_string(p) + "." + std::to_string(i));
      good.push_back(pool.submit("echo", keys.back()));
    }
    if (p < kPoison) poison.push_back(pool.submit("segfault", ""));
  }
  for (std::size_t i = 0; i < poison.size(); ++i) {
    const auto error = error_of(poison[i]);
    ASSERT_TRUE(error) << "poison " << i;
    EXPECT_EQ(error->kind(), TaskError::Kind::WorkerCrashed) << error->what();
    EXPECT_NE(std::string(error->what()).find("SIGSEGV"), std::string::npos) << error->what();
  }
  int ok = 0;
  for (std::size_t i = 0; i < good.size(); ++i) {
    const Outcome out = outcome_of(good[i]);
    ok += out.value == keys[i];
    if (out.value != keys[i]) ADD_FAILURE() << keys[i] << ": " << out.describe();
  }
  EXPECT_EQ(ok, static_cast<int>(good.size()));
  EXPECT_EQ(pool.metrics().state, PoolMetrics::State::Running);
  expect_serves(pool, 10, "after the poison ");
}

// ---------------------------------------------------------------------------------------------
// A program that falls over right after READY: a crash loop

PoolOptions crash_looping_pool(EventLog& log) {
  PoolOptions options = pool_of("crashy", 1);
  options.args = {"--exit-after-ready", "100"};
  options.on_event = log.callback();
  return options;
}

// Each exit while idle right after READY is a broken start: the n-th in a row waits a delay in
// [0, min(max_backoff, initial_backoff * 2^(n-1))) (full jitter over a capped exponential),
// CrashLoop is reported after crash_loop_after of them, and the slot keeps retrying: the pool
// never fails. Checked against the reported delays' bounds, not against wall-clock timings.
TEST(PoolRestart, CrashLoopBacksOffWithinTheBoundsAndNeverFailsThePool) {
  Watchdog watchdog(kTestBound);
  EventLog log;
  const PoolOptions options = crash_looping_pool(log);
  const RestartPolicy policy;  // the defaults the pool runs with
  Pool pool(options);
  constexpr unsigned kBrokenStarts = 6;
  ASSERT_TRUE(log.wait_for(
      [](const PoolEvent& e) {
        return e.kind == EventKind::WorkerRestarting && e.consecutive_failures >= kBrokenStarts;
      },
      0, 30s))
      << log.describe();
  unsigned expected = 1;
  bool crash_loop = false;
  for (const EventLog::Seen& seen : log.seen()) {
    const PoolEvent& e = seen.event;
    if (e.kind == EventKind::CrashLoop) {
      EXPECT_EQ(e.consecutive_failures, policy.crash_loop_after);
      // Reported with the death that makes it, before that death's restart.
      EXPECT_EQ(expected, policy.crash_loop_after);
      crash_loop = true;
    }
    if (e.kind == EventKind::WorkerExited) {
      EXPECT_TRUE(e.counted) << e.message;
      EXPECT_EQ(e.exit_code, 3) << e.message;
    }
    if (e.kind != EventKind::WorkerRestarting || expected > kBrokenStarts) continue;
    EXPECT_EQ(e.consecutive_failures, expected);
    const milliseconds cap =
        std::min(policy.max_backoff, policy.initial_backoff * (1 << (expected - 1)));
    EXPECT_GE(e.delay.count(), 0);
    EXPECT_LT(e.delay, cap) << "broken start " << expected;
    ++expected;
  }
  EXPECT_EQ(expected, kBrokenStarts + 1);
  EXPECT_TRUE(crash_loop) << log.describe();
  EXPECT_EQ(pool.metrics().state, PoolMetrics::State::Running);
  EXPECT_TRUE(
      poll_until([&] { return worker_in(pool, 0).state == WorkerMetrics::State::CrashLoop; }, 10s))
      << to_string(worker_in(pool, 0).state);
  EXPECT_GE(worker_in(pool, 0).consecutive_failures, policy.crash_loop_after);
}

// give_up_after, the opt-in: that many broken starts in a row fail the pool.
TEST(PoolRestart, GiveUpAfterFailsThePoolAfterThatManyBrokenStarts) {
  Watchdog watchdog(kTestBound);
  EventLog log;
  PoolOptions options = crash_looping_pool(log);
  options.restart.give_up_after = 3;
  Pool pool(options);
  ASSERT_TRUE(poll_until([&] { return pool.metrics().state == PoolMetrics::State::Failed; }, 30s))
      << to_string(pool.metrics().state) << "; events: " << log.describe();
  // Events reach the callback after the state they report changed: the third exit may still
  // be on its way when the state says Failed.
  auto counted = [&] {
    unsigned n = 0;
    for (const EventLog::Seen& seen : log.seen()) {
      n += seen.event.kind == EventKind::WorkerExited && seen.event.counted;
    }
    return n;
  };
  EXPECT_TRUE(poll_until([&] { return counted() >= 3u; }, 10s)) << log.describe();
  EXPECT_EQ(counted(), 3u) << log.describe();
  auto late = pool.submit("echo", "late");
  EXPECT_EQ(kind_of(late), TaskError::Kind::PoolFailed);
}

}  // namespace
}  // namespace procpool::test
