#pragma once
#include "procpool/detail/require_cxx20.hpp"

#include <atomic>   // std::atomic
#include <chrono>   // std::chrono::nanoseconds
#include <cstdint>  // std::uint32_t

namespace procpool::detail {

// Outcome of one futex wait, as a value: the hot path never throws.
enum class FutexResult : std::uint8_t {
  kWoken,         // FUTEX_WAKE reached us (or a spurious wake-up: callers re-check)
  kValueChanged,  // *word != expected when the kernel looked: nothing to wait for
  kTimedOut,      // the relative timeout elapsed
  kInterrupted,   // a signal handler ran; callers re-check and wait again
};

// FUTEX_WAIT on a 32-bit word in shared memory, *without* FUTEX_PRIVATE_FLAG: the kernel keys
// the wait by the backing page, so it works across processes and across different mapping
// addresses. (std::atomic::wait uses a private futex plus a per-process table and never wakes
// a waiter in another process: docs/design-rules.md §5.) `timeout` < 0 means wait without a bound,
// which no cross-process caller in procpool does.
FutexResult futex_wait(const std::atomic<std::uint32_t>* word, std::uint32_t expected,
                       std::chrono::nanoseconds timeout) noexcept;

// FUTEX_WAKE up to `count` waiters on `word`. Returns how many were woken.
int futex_wake(const std::atomic<std::uint32_t>* word, int count) noexcept;

}  // namespace procpool::detail
