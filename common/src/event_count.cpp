#include "procpool/event_count.hpp"

#include <climits>  // INT_MAX

#include "procpool/detail/futex.hpp"

namespace procpool {

WaitResult EventCount::wait(Key key, std::chrono::nanoseconds timeout) noexcept {
  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + timeout;
  WaitResult result = WaitResult::kReady;
  // Loop over interruptions and spurious wake-ups until the epoch moves or time runs out.
  while (epoch_.load(std::memory_order_acquire) == key) {
    const auto left = deadline - Clock::now();
    if (left <= std::chrono::nanoseconds::zero()) {
      result = WaitResult::kTimedOut;
      break;
    }
    const detail::FutexResult woke = detail::futex_wait(&epoch_, key, left);
    if (woke == detail::FutexResult::kTimedOut) {
      result = epoch_.load(std::memory_order_acquire) == key ? WaitResult::kTimedOut
                                                             : WaitResult::kReady;
      break;
    }
    if (woke == detail::FutexResult::kInterrupted) break;  // let the caller see its signal
  }
  waiters_.fetch_sub(1, std::memory_order_relaxed);
  return result;
}

void EventCount::wake_all() noexcept {
  // The release RMW orders the notifier's published data before the epoch a woken waiter reads.
  epoch_.fetch_add(1, std::memory_order_release);
  detail::futex_wake(&epoch_, INT_MAX);
}

}  // namespace procpool
