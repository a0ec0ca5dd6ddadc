// The chaos test (issue 4): 200,000 tasks through a pool of two workers while a random worker is
// SIGKILLed every 50-250 ms, with retries enabled. Every task must resolve exactly once with the
// right answer; the pool must still serve afterwards; the supervisor's RSS must not grow without
// bound; no zombie or leftover child, no unexpected fd in a worker, nothing new in /dev/shm.
//
// The workload is tests/chaos/chaos.cpp (also procpool-soak, scripts/soak.sh). It bounds every
// wait itself (ChaosConfig::deadline); the pause between kills is the workload, not
// synchronisation.

#include <gtest/gtest.h>

#include <chrono>    // durations
#include <iostream>  // std::cout

#include "chaos.hpp"
#include "test_workers.hpp"

namespace procpool::test {
namespace {

TEST(PoolChaos, EveryTaskResolvesExactlyOnceWhileWorkersAreKilled) {
  chaos::ChaosConfig config;
  config.worker = worker_path("crashy");
  config.tasks = 200'000;
  config.workers = 2;
  config.window = 256;
  config.spin_us = 10;  // ~1-2 s of work on two workers: a dozen kills or more
  config.max_attempts = 8;
  config.kill_min = std::chrono::milliseconds(50);
  config.kill_max = std::chrono::milliseconds(250);
  config.deadline = std::chrono::seconds(400);
  config.seed = 20261126;

  const chaos::ChaosReport report = chaos::run_chaos(config);
  std::cout << report.text();  // the figures, in the test log
  SCOPED_TRACE(report.text());
  EXPECT_EQ(report.submitted, 201'000u);  // with the 1,000 warm-up tasks
  EXPECT_EQ(report.completed, report.submitted);
  EXPECT_EQ(report.failed, 0u);
  EXPECT_EQ(report.wrong, 0u);
  EXPECT_EQ(report.duplicated, 0u);
  EXPECT_EQ(report.lost, 0u);
  EXPECT_TRUE(report.served_after);
  EXPECT_GE(report.kills, 3u) << "the run was too short to test anything";
  EXPECT_GE(report.restarts, report.kills) << "every kill is a restart";
  // Bounded growth: the task table and buffers reach their size during warm-up and the first
  // window; 200,000 more tasks and the kills must not add more than this.
  EXPECT_LT(report.supervisor_rss_end - report.checker_bytes,
            report.supervisor_rss_start + 64ull * 1024 * 1024);
  EXPECT_TRUE(report.anomalies.empty());
}

}  // namespace
}  // namespace procpool::test
