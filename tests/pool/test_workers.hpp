#pragma once

// Paths of the example workers built with the tests, and a pool-options shorthand.

#include <string>  // std::string

#include "procpool/pool_options.hpp"

namespace procpool::test {

inline std::string worker_path(const std::string& name) {
  return std::string(PROCPOOL_TEST_WORKER_DIR) + "/procpool-worker-" + name;
}

// Options for a small pool of `workers` example workers `name`; everything else is the default.
inline PoolOptions small_pool(const std::string& name, unsigned workers = 1) {
  PoolOptions options;
  options.executable = worker_path(name);
  options.min_workers = workers;
  options.max_workers = workers;
  return options;
}

}  // namespace procpool::test
