#include "procpool/detail/futex.hpp"

#include <linux/futex.h>  // FUTEX_WAIT, FUTEX_WAKE
#include <sys/syscall.h>  // SYS_futex
#include <unistd.h>       // syscall

#include <cerrno>  // errno
#include <ctime>   // timespec

namespace procpool::detail {

FutexResult futex_wait(const std::atomic<std::uint32_t>* word, std::uint32_t expected,
                       std::chrono::nanoseconds timeout) noexcept {
  timespec relative{};
  timespec* bound = nullptr;
  if (timeout.count() >= 0) {
    relative.tv_sec = static_cast<time_t>(timeout.count() / 1'000'000'000);
    relative.tv_nsec = static_cast<long>(timeout.count() % 1'000'000'000);
    bound = &relative;
  }
  // Not FUTEX_WAIT_PRIVATE: the word is in memory shared with another process.
  const long rc = ::syscall(SYS_futex, word, FUTEX_WAIT, expected, bound, nullptr, 0);
  if (rc == 0) return FutexResult::kWoken;
  switch (errno) {
    case EAGAIN:
      return FutexResult::kValueChanged;
    case ETIMEDOUT:
      return FutexResult::kTimedOut;
    default:
      return FutexResult::kInterrupted;  // EINTR; EFAULT cannot happen on a live mapping
  }
}

int futex_wake(const std::atomic<std::uint32_t>* word, int count) noexcept {
  const long rc = ::syscall(SYS_futex, word, FUTEX_WAKE, count, nullptr, nullptr, 0);
  return rc < 0 ? 0 : static_cast<int>(rc);
}

}  // namespace procpool::detail
