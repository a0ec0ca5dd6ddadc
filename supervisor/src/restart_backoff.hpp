#pragma once

#include <algorithm>  // std::min
#include <chrono>     // std::chrono::milliseconds

#include "procpool/pool_options.hpp"

namespace procpool::detail {

// The delay before restarting a slot after its `failures`-th consecutive failure (1-based):
// initial * 2^(failures-1), capped at max_backoff, scaled by `jitter` in [0.8, 1.2] so that slots
// failing together do not restart in lockstep.
inline std::chrono::milliseconds restart_backoff(const RestartPolicy& policy, unsigned failures,
                                                 double jitter) {
  if (failures == 0) return std::chrono::milliseconds(0);
  const double base = static_cast<double>(policy.initial_backoff.count());
  const double cap = static_cast<double>(policy.max_backoff.count());
  double delay = base;
  for (unsigned i = 1; i < failures && delay < cap; ++i) delay *= 2;
  delay = std::min(delay, cap) * jitter;
  return std::chrono::milliseconds(static_cast<long long>(delay));
}

}  // namespace procpool::detail
