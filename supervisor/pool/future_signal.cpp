#include <linux/futex.h>  // FUTEX_WAIT_BITSET_PRIVATE
#include <sys/syscall.h>  // SYS_futex
#include <unistd.h>       // syscall

#include <cerrno>   // errno
#include <climits>  // INT_MAX
#include <ctime>    // timespec

#include "procpool/future.hpp"

namespace procpool::detail {
namespace {

std::uint32_t* word(std::atomic<std::uint32_t>& atomic) noexcept {
  static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t));
  return reinterpret_cast<std::uint32_t*>(&atomic);
}

}  // namespace

// The Dekker pair: set() stores done then reads sleepers_; a sleeper adds itself then reads
// done. Both sequentially consistent, so at least one of them sees the other: either the
// sleeper sees done and does not sleep, or set() sees the sleeper and wakes it (and the futex
// wait itself re-checks done in the kernel). With nobody asleep, set() makes no system call.
void FutureSignal::set() noexcept {
  done_.store(1, std::memory_order_seq_cst);
  if (sleepers_.load(std::memory_order_seq_cst) != 0) {
    ::syscall(SYS_futex, word(done_), FUTEX_WAKE_PRIVATE, INT_MAX, nullptr, nullptr, 0);
  }
}

bool FutureSignal::wait_until(std::optional<Clock::time_point> deadline) noexcept {
  if (is_set()) return true;
  // steady_clock is CLOCK_MONOTONIC in libstdc++ on Linux: the deadline goes to the kernel as
  // an absolute CLOCK_MONOTONIC time (FUTEX_WAIT_BITSET), so spurious wake-ups do not stretch it.
  timespec at{};
  if (deadline) {
    const auto since_epoch = deadline->time_since_epoch();
    const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(since_epoch);
    at.tv_sec = static_cast<time_t>(seconds.count());
    at.tv_nsec = static_cast<long>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(since_epoch - seconds).count());
    if (at.tv_sec < 0) at = timespec{};
  }
  sleepers_.fetch_add(1, std::memory_order_seq_cst);
  while (done_.load(std::memory_order_seq_cst) == 0) {
    const long r = ::syscall(SYS_futex, word(done_), FUTEX_WAIT_BITSET_PRIVATE, 0u,
                             deadline ? &at : nullptr, nullptr, FUTEX_BITSET_MATCH_ANY);
    if (r != 0 && errno == ETIMEDOUT) break;
  }
  sleepers_.fetch_sub(1, std::memory_order_seq_cst);
  return is_set();
}

}  // namespace procpool::detail
