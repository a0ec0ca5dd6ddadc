#pragma once

#include <chrono>  // clocks

#include "worker_slot.hpp"  // Clock

namespace procpool::detail {

// The pool measures with Clock (steady) and reports wall-clock times only in metrics.
inline double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}
inline double micros_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::micro>(b - a).count();
}
inline double unix_now_s() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace procpool::detail
