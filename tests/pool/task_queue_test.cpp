// TaskQueue: priority order, FIFO within a level, the bounded bypass that keeps lower levels
// from starving (docs/pool.md, "Priorities"), push_front, remove and drain.

#include "task_queue.hpp"

#include <gtest/gtest.h>

#include <array>    // per-level bookkeeping
#include <cstdint>  // std::uint32_t
#include <deque>    // the model of each level
#include <vector>   // pop order

namespace procpool::detail {
namespace {

constexpr std::array kLevels{Priority::High, Priority::Normal, Priority::Low};

// Task ids carry their level, so a popped id tells which level it came from.
constexpr std::uint32_t id(Priority p, std::uint32_t n) {
  return static_cast<std::uint32_t>(p) * 1'000'000 + n;
}
std::size_t level_of(std::uint32_t task) { return task / 1'000'000; }

std::vector<std::uint32_t> pop_all(TaskQueue& queue) {
  std::vector<std::uint32_t> out;
  while (auto task = queue.pop()) out.push_back(*task);
  return out;
}

TEST(TaskQueue, EmptyPopsNothing) {
  TaskQueue queue;
  EXPECT_TRUE(queue.empty());
  EXPECT_EQ(queue.size(), 0U);
  EXPECT_FALSE(queue.pop().has_value());
}

// Fewer waiting tasks than the bypass limit: plain priority order, FIFO within each level,
// whatever order they were pushed in.
TEST(TaskQueue, BelowTheBypassLimitStrictPriorityAndFifo) {
  TaskQueue queue;
  for (std::uint32_t n = 0; n < TaskQueue::kMaxBypass; ++n) {
    queue.push(Priority::Low, id(Priority::Low, n));
    queue.push(Priority::High, id(Priority::High, n));
    queue.push(Priority::Normal, id(Priority::Normal, n));
  }
  EXPECT_EQ(queue.size(), 3U * TaskQueue::kMaxBypass);
  std::vector<std::uint32_t> expected;
  for (Priority p : kLevels) {
    for (std::uint32_t n = 0; n < TaskQueue::kMaxBypass; ++n) expected.push_back(id(p, n));
  }
  EXPECT_EQ(pop_all(queue), expected);
  EXPECT_TRUE(queue.empty());
}

// A flood of all three levels, pushed interleaved. Checked on every dispatch:
//  - FIFO within each level;
//  - High is passed over only after kMaxBypass High dispatches in a row, for one Normal task,
//    or for Low's turn followed at once by Normal's;
//  - a waiting Normal task is passed over by at most kMaxBypass High tasks (one in 8), also while
//    Low waits;
//  - a waiting Low task gets a dispatch at least once in (kMaxBypass + 1)^2 (one in 64).
TEST(TaskQueue, ThreeLevelFloodKeepsPriorityFifoAndTheBypassBounds) {
  constexpr std::uint32_t kHigh = 4000, kNormal = 1000, kLow = 300;
  TaskQueue queue;
  std::array<std::deque<std::uint32_t>, 3> model;
  std::array<std::uint32_t, 3> pushed{};
  const std::array<std::uint32_t, 3> totals{kHigh, kNormal, kLow};
  // Interleaved pushes: 40 High, 10 Normal, 3 Low per round.
  while (pushed[0] < kHigh || pushed[1] < kNormal || pushed[2] < kLow) {
    for (std::size_t l = 0; l < 3; ++l) {
      const std::uint32_t per_round = l == 0 ? 40 : l == 1 ? 10 : 3;
      for (std::uint32_t i = 0; i < per_round && pushed[l] < totals[l]; ++i) {
        const std::uint32_t task = id(kLevels[l], pushed[l]++);
        queue.push(kLevels[l], task);
        model[l].push_back(task);
      }
    }
  }
  ASSERT_EQ(queue.size(), kHigh + kNormal + kLow);

  constexpr unsigned kTurn = TaskQueue::kMaxBypass + 1;
  unsigned high_since_normal = 0;  // High dispatches since Normal was last served
  unsigned higher_since_low = 0;   // High or Normal dispatches since Low was last served
  unsigned high_run = 0;           // High dispatches in a row
  std::size_t last_lower = 0;      // the level of the last lower task taken while High waited
  unsigned lower_run = 0;          // lower tasks in a row taken while High waited
  std::array<unsigned, 3> popped{};
  for (std::uint32_t n = 0; n < kHigh + kNormal + kLow; ++n) {
    const auto task = queue.pop();
    ASSERT_TRUE(task.has_value()) << "dispatch " << n;
    const std::size_t level = level_of(*task);
    ASSERT_FALSE(model[level].empty()) << "dispatch " << n;
    ASSERT_EQ(*task, model[level].front()) << "not FIFO at dispatch " << n;
    const bool high_waited = !model[0].empty();
    const bool normal_waited = !model[1].empty();
    const bool low_waited = !model[2].empty();
    model[level].pop_front();
    ++popped[level];

    if (level != 0 && high_waited) {
      if (lower_run == 0) {
        ASSERT_GE(high_run, TaskQueue::kMaxBypass) << "High passed over early at dispatch " << n;
      } else {
        ASSERT_TRUE(lower_run == 1 && last_lower == 2 && level == 1)
            << "High passed over twice in a row at dispatch " << n;
      }
      ++lower_run;
      last_lower = level;
    } else {
      lower_run = 0;
    }
    high_run = level == 0 ? high_run + 1 : 0;
    if (level == 0 && normal_waited) {
      ++high_since_normal;
      ASSERT_LE(high_since_normal, TaskQueue::kMaxBypass)
          << "Normal passed over by " << high_since_normal << " High at dispatch " << n;
    }
    if (level == 1 || !normal_waited) high_since_normal = 0;
    if (level != 2 && low_waited) {
      ++higher_since_low;
      ASSERT_LT(higher_since_low, kTurn * kTurn) << "Low starved at dispatch " << n;
    }
    if (level == 2 || !low_waited) higher_since_low = 0;
    // In the first 64 dispatches every level is flooded: exactly the documented shares.
    if (n + 1 == kTurn * kTurn) {
      EXPECT_EQ(popped[0], kTurn * kTurn - kTurn);
      EXPECT_EQ(popped[1], kTurn - 1);
      EXPECT_EQ(popped[2], 1U);
    }
  }
  EXPECT_TRUE(queue.empty());
  EXPECT_FALSE(queue.pop().has_value());
}

// Normal is not flooded by High alone: once High is gone, the rest comes out in order.
TEST(TaskQueue, HighFloodGivesNormalOneDispatchInEight) {
  TaskQueue queue;
  for (std::uint32_t n = 0; n < 64; ++n) queue.push(Priority::High, id(Priority::High, n));
  for (std::uint32_t n = 0; n < 4; ++n) queue.push(Priority::Normal, id(Priority::Normal, n));
  const std::vector<std::uint32_t> order = pop_all(queue);
  ASSERT_EQ(order.size(), 68U);
  for (std::uint32_t k = 0; k < 4; ++k) {
    EXPECT_EQ(order[(k + 1) * (TaskQueue::kMaxBypass + 1) - 1], id(Priority::Normal, k)) << k;
  }
}

TEST(TaskQueue, PushFrontGoesAheadOfItsLevelOnly) {
  TaskQueue queue;
  queue.push(Priority::Normal, 1);
  queue.push(Priority::Normal, 2);
  queue.push(Priority::High, 10);
  queue.push_front(Priority::Normal, 3);  // a task whose worker died: before 1 and 2
  queue.push_front(Priority::Low, 20);
  EXPECT_EQ(queue.size(), 5U);
  EXPECT_EQ(pop_all(queue), (std::vector<std::uint32_t>{10, 3, 1, 2, 20}));
}

TEST(TaskQueue, RemoveTakesOutOnlyThatTaskAtThatLevel) {
  TaskQueue queue;
  for (std::uint32_t n = 1; n <= 5; ++n) queue.push(Priority::Normal, n);
  queue.push(Priority::Low, 6);
  EXPECT_TRUE(queue.remove(Priority::Normal, 3));
  EXPECT_FALSE(queue.remove(Priority::Normal, 3));  // already gone
  EXPECT_FALSE(queue.remove(Priority::High, 4));    // queued, but at another level
  EXPECT_FALSE(queue.remove(Priority::Low, 42));    // never queued
  EXPECT_TRUE(queue.remove(Priority::Normal, 1));   // the front
  EXPECT_TRUE(queue.remove(Priority::Low, 6));
  EXPECT_EQ(queue.size(), 3U);
  EXPECT_EQ(pop_all(queue), (std::vector<std::uint32_t>{2, 4, 5}));
}

TEST(TaskQueue, DrainTakesEverythingInPriorityOrder) {
  TaskQueue queue;
  for (std::uint32_t n = 0; n < 20; ++n) {
    queue.push(kLevels[n % 3], id(kLevels[n % 3], n));
  }
  (void)queue.pop();  // the bypass counters are mid-way: drain ignores them
  std::vector<std::uint32_t> drained;
  queue.drain([&](std::uint32_t task) { drained.push_back(task); });
  std::vector<std::uint32_t> expected;
  for (std::uint32_t l = 0; l < 3; ++l) {
    for (std::uint32_t n = 0; n < 20; ++n) {
      if (n % 3 == l && n != 0) expected.push_back(id(kLevels[l], n));
    }
  }
  EXPECT_EQ(drained, expected);
  EXPECT_TRUE(queue.empty());
  EXPECT_FALSE(queue.pop().has_value());
  queue.push(Priority::Low, 7);  // usable afterwards
  EXPECT_EQ(queue.pop(), std::optional<std::uint32_t>(7));
}

}  // namespace
}  // namespace procpool::detail
