#pragma once

#include "procpool/pool_options.hpp"

namespace procpool::detail {

// PoolOptions::min_workers, with 0 meaning one per CPU.
unsigned default_min_workers(const PoolOptions& options);

// Rejects options a pool cannot run with: throws Error with a message saying which and why.
void validate_pool_options(const PoolOptions& options, unsigned min_workers, unsigned max_workers);

}  // namespace procpool::detail
