#pragma once

// Paths of the example workers built with the tests, and a pool-options shorthand.

#include <string>  // std::string

#include "procpool/pool_options.hpp"

namespace procpool::test {

inline std::string worker_path(const std::string& name) {
  return std::string(PROCPOOL_TEST_WORKER_DIR) + "/procpool-worker-" + name;
}

// Options for a small pool of `workers` example workers `name` with test-friendly timings.
inline PoolOptions small_pool(const std::string& name, unsigned workers = 1) {
  PoolOptions options;
  options.executable = worker_path(name);
  options.min_workers = workers;
  options.max_workers = workers;
  options.restart.initial_backoff = std::chrono::milliseconds(10);
  options.restart.max_backoff = std::chrono::milliseconds(100);
  return options;
}

}  // namespace procpool::test
