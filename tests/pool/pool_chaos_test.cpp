// The chaos test (issues 4 and 10): 0.2 ms tasks through a pool of two workers while a random
// worker is SIGKILLed every 100-250 ms, with default options apart from max_attempts (6). Every
// task must resolve exactly once with the right answer (none lost, none twice); the pool must
// still serve afterwards; the supervisor's RSS must not grow without bound; no zombie or leftover
// child, no unexpected fd in a worker, nothing new in /dev/shm. Without sanitizers, the stream's
// wall time must also stay within 1.3x of the same stream without kills, run in this process
// just before (on a shared machine a comparison may be retried; exactly-once is checked on every
// run). Under sanitizers the task count is smaller and the wall time is not judged.
//
// The workload is tests/chaos/chaos.cpp (also procpool-soak, scripts/soak.sh, which runs the
// full 200,000 tasks). It bounds every wait itself (ChaosConfig::deadline); the pause between
// kills is the workload, not synchronisation.

#include <gtest/gtest.h>

#include <chrono>    // durations
#include <iostream>  // std::cout

#include "../common/test_timing.hpp"  // kAddressSanitizer, kThreadSanitizer
#include "chaos.hpp"
#include "test_workers.hpp"

namespace procpool::test {
namespace {

constexpr bool kSanitized = kAddressSanitizer || kThreadSanitizer;
// About 4 s of work per run on two workers; under sanitizers the supervisor's share per task
// grows several times, hence fewer.
constexpr std::uint64_t kTasks = kSanitized ? 20'000 : 40'000;
constexpr double kMaxRatio = 1.3;
constexpr int kComparisons = 3;  // at most, while the ratio is above kMaxRatio

chaos::ChaosConfig chaos_config(std::uint64_t seed) {
  chaos::ChaosConfig config;
  config.worker = worker_path("crashy");
  config.tasks = kTasks;
  config.workers = 2;
  config.spin_us = 200;
  config.max_attempts = 6;
  config.kill_min = std::chrono::milliseconds(100);
  config.kill_max = std::chrono::milliseconds(250);
  config.deadline = std::chrono::seconds(250);
  config.seed = seed;
  return config;
}

void expect_exactly_once(const chaos::ChaosReport& report, bool killed) {
  SCOPED_TRACE(report.text());
  EXPECT_EQ(report.submitted, kTasks + 1'000);  // with the 1,000 warm-up tasks
  EXPECT_EQ(report.completed, report.submitted);
  EXPECT_EQ(report.failed, 0u);
  EXPECT_EQ(report.wrong, 0u);
  EXPECT_EQ(report.duplicated, 0u);
  EXPECT_EQ(report.lost, 0u);
  EXPECT_TRUE(report.served_after);
  if (killed) {
    EXPECT_GE(report.kills, 10u) << "the run was too short to test anything";
    EXPECT_GE(report.restarts, report.kills) << "every kill is a restart";
  } else {
    EXPECT_EQ(report.kills, 0u);
  }
  // Bounded growth: the task table and buffers reach their size during warm-up and the first
  // window; the rest of the stream and the kills must not add more than this.
  EXPECT_LT(report.supervisor_rss_end - report.checker_bytes,
            report.supervisor_rss_start + 64ull * 1024 * 1024);
  EXPECT_TRUE(report.anomalies.empty());
}

TEST(PoolChaos, EveryTaskResolvesExactlyOnceWhileWorkersAreKilled) {
  if (kSanitized) {
    const chaos::ChaosReport report = chaos::run_chaos(chaos_config(20261126));
    std::cout << report.text();  // the figures, in the test log
    expect_exactly_once(report, true);
    return;
  }
  double best = 0;
  for (int round = 0; round < kComparisons; ++round) {
    const chaos::ChaosComparison comparison =
        chaos::run_chaos_and_baseline(chaos_config(20261126 + static_cast<std::uint64_t>(round)));
    std::cout << comparison.text();
    expect_exactly_once(comparison.baseline, false);
    expect_exactly_once(comparison.chaos, true);
    if (::testing::Test::HasFailure()) return;
    best = round == 0 ? comparison.ratio() : std::min(best, comparison.ratio());
    if (best <= kMaxRatio) break;
  }
  EXPECT_GT(best, 0);
  EXPECT_LE(best, kMaxRatio) << "wall time with kills over without, best of " << kComparisons;
}

}  // namespace
}  // namespace procpool::test
