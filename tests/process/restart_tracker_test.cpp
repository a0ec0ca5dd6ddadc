// RestartTracker (supervisor/process/restart_tracker.hpp): which deaths count, the full-jitter
// backoff bounds, the reset after a stable run, crash-loop reporting and the opt-in give-up.

#include "restart_tracker.hpp"

#include <gtest/gtest.h>

#include <chrono>  // durations

namespace procpool::detail {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

TEST(RestartTracker, OnlyBrokenStartsCount) {
  RestartPolicy policy;
  RestartTracker tracker(policy);
  EXPECT_EQ(tracker.on_death(DeathKind::kBusy, 0.5), 0ms);
  EXPECT_EQ(tracker.on_death(DeathKind::kIntended, 0.5), 0ms);
  EXPECT_EQ(tracker.on_death(DeathKind::kStable, 0.5), 0ms);
  EXPECT_EQ(tracker.broken_in_a_row(), 0u);
  tracker.on_death(DeathKind::kBroken, 0.5);
  EXPECT_EQ(tracker.broken_in_a_row(), 1u);
  // A death with a task on board neither counts nor resets the count.
  EXPECT_EQ(tracker.on_death(DeathKind::kBusy, 0.5), 0ms);
  EXPECT_EQ(tracker.broken_in_a_row(), 1u);
  // A death after a stable run resets it.
  tracker.on_death(DeathKind::kStable, 0.5);
  EXPECT_EQ(tracker.broken_in_a_row(), 0u);
}

TEST(RestartTracker, BackoffIsFullJitterUnderTheCappedExponential) {
  RestartPolicy policy;  // 100 ms doubling to 10 s
  RestartTracker tracker(policy);
  const long long caps[] = {100, 200, 400, 800, 1600, 3200, 6400, 10000, 10000, 10000};
  for (long long cap : caps) {
    EXPECT_EQ(tracker.backoff_cap(tracker.broken_in_a_row() + 1).count(), cap);
    RestartTracker low = tracker, high = tracker;
    EXPECT_EQ(low.on_death(DeathKind::kBroken, 0.0), 0ms);
    const auto top = high.on_death(DeathKind::kBroken, 0.999999);
    EXPECT_LT(top.count(), cap);  // the jittered value stays below the cap, never above it
    EXPECT_GE(top.count(), cap - 1);
    const auto mid = tracker.on_death(DeathKind::kBroken, 0.5);
    EXPECT_EQ(mid.count(), cap / 2);
  }
  // Out-of-range random numbers are clamped into [0, 1).
  EXPECT_LT(tracker.on_death(DeathKind::kBroken, 7.0), 10000ms);
  EXPECT_EQ(tracker.on_death(DeathKind::kBroken, -1.0), 0ms);
}

TEST(RestartTracker, AStableRunResetsTheCount) {
  RestartPolicy policy;
  policy.min_uptime = 1000ms;
  RestartTracker tracker(policy);
  for (int i = 0; i < 3; ++i) tracker.on_death(DeathKind::kBroken, 0.5);
  ASSERT_EQ(tracker.broken_in_a_row(), 3u);
  const auto t0 = Clock::time_point{} + 1h;
  tracker.on_ready(t0);
  tracker.on_alive(t0 + 999ms);
  EXPECT_EQ(tracker.broken_in_a_row(), 3u);
  tracker.on_alive(t0 + 1000ms);
  EXPECT_EQ(tracker.broken_in_a_row(), 0u);
  // After a death, liveness of the dead process no longer counts.
  tracker.on_death(DeathKind::kBroken, 0.5);
  tracker.on_alive(t0 + 5000ms);
  EXPECT_EQ(tracker.broken_in_a_row(), 1u);
}

TEST(RestartTracker, CrashLoopIsReportedAndGivingUpIsOptIn) {
  RestartPolicy policy;
  RestartTracker tracker(policy);
  for (int i = 0; i < 4; ++i) tracker.on_death(DeathKind::kBroken, 0.5);
  EXPECT_FALSE(tracker.crash_looping());
  tracker.on_death(DeathKind::kBroken, 0.5);
  EXPECT_TRUE(tracker.crash_looping());  // crash_loop_after = 5
  for (int i = 0; i < 1000; ++i) tracker.on_death(DeathKind::kBroken, 0.5);
  EXPECT_FALSE(tracker.gave_up()) << "the default never gives up";

  policy.give_up_after = 3;
  RestartTracker strict(policy);
  strict.on_death(DeathKind::kBroken, 0.5);
  strict.on_death(DeathKind::kBroken, 0.5);
  EXPECT_FALSE(strict.gave_up());
  strict.on_death(DeathKind::kBroken, 0.5);
  EXPECT_TRUE(strict.gave_up());
}

TEST(RestartTracker, ADefaultConstructedTrackerUsesTheDefaultPolicy) {
  RestartTracker tracker;
  EXPECT_EQ(tracker.backoff_cap(1), RestartPolicy{}.initial_backoff);
  EXPECT_EQ(tracker.backoff_cap(100), RestartPolicy{}.max_backoff);
}

}  // namespace
}  // namespace procpool::detail
