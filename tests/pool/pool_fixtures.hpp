#pragma once

// The fixtures of the pool test suites whose tests are spread over several files (PoolBasic,
// PoolScheduling): one definition each, so that every file's TEST_Fs share one fixture class.

#include <gtest/gtest.h>

#include <chrono>  // std::chrono::seconds

#include "pool_test_support.hpp"  // Watchdog

namespace procpool::test {

// Everyday behaviour (pool_basic_test, pool_task_error_test, pool_options_metrics_test).
class PoolBasic : public ::testing::Test {
 protected:
  Watchdog watchdog_{std::chrono::seconds(50)};
};

// Scheduling (pool_scheduling_test, pool_scaling_test).
class PoolScheduling : public ::testing::Test {
 protected:
  Watchdog watchdog_{std::chrono::seconds(50)};
};

}  // namespace procpool::test
