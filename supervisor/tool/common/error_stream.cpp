#include "common/error_stream.hpp"

#include <limits.h>  // PIPE_BUF
#include <poll.h>    // poll
#include <unistd.h>  // write

#include <algorithm>  // std::min
#include <cerrno>     // errno
#include <thread>     // std::this_thread::sleep_for

#include "common/interrupt_signals.hpp"
#include "procpool/error.hpp"

namespace procpool::tool {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int kWaitMs = 1000;  // every wait is bounded

}  // namespace

bool write_all(int fd, const char* data, std::size_t size, Deadline deadline,
               std::size_t* written) {
  std::size_t ignored = 0;
  std::size_t& done = written != nullptr ? *written : ignored;
  done = 0;
  while (size > 0) {
    std::size_t chunk = size;
    if (deadline) {
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(*deadline - Clock::now());
      pollfd writable{fd, POLLOUT, 0};
      if (left.count() <= 0 || ::poll(&writable, 1, static_cast<int>(left.count())) == 0) {
        errno = ETIMEDOUT;
        return false;
      }
      chunk = std::min<std::size_t>(size, PIPE_BUF);
    }
    const ssize_t n = ::write(fd, data, chunk);
    if (n > 0) {
      data += n;
      size -= static_cast<std::size_t>(n);
      done += static_cast<std::size_t>(n);
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (deadline) continue;  // the poll above waits, bounded
      pollfd writable{fd, POLLOUT, 0};
      ::poll(&writable, 1, kWaitMs);
    } else {
      if (n == 0) errno = EIO;
      return false;
    }
  }
  return true;
}

void ErrorStream::message(std::string_view text, Deadline deadline) {
  const InterruptSignals::BlockingWrite may_block;  // covers waiting for the relay's write too
  std::lock_guard lock(mutex_);
  (void)write_locked(text, deadline);  // nowhere to report a failure
}

void ErrorStream::progress(std::string_view line, bool final) {
  const InterruptSignals::BlockingWrite may_block;
  std::lock_guard lock(mutex_);
  (void)write_all(fd_, line.data(), line.size());
  progress_open_ = !final;
}

void ErrorStream::relay_line(std::string_view line) {
  const Deadline deadline = Clock::now() + kRelayWait;
  // Not a timed lock: ThreadSanitizer does not model pthread_mutex_clocklock, which
  // std::timed_mutex uses. The lock is held only for a write, so polling it is cheap.
  std::unique_lock lock(mutex_, std::try_to_lock);
  while (!lock.owns_lock()) {
    if (Clock::now() >= *deadline) {  // the main thread is stuck writing: so would we be
      dropped_lines_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    (void)lock.try_lock();
  }
  if (relay_stalled_) {
    pollfd room{fd_, POLLOUT, 0};
    if (::poll(&room, 1, 0) != 1 || (room.revents & POLLOUT) == 0) {
      dropped_lines_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    relay_stalled_ = false;
  }
  if (!write_locked(line, deadline) || !write_all(fd_, "\n", 1, deadline)) {
    relay_stalled_ = true;
    dropped_lines_.fetch_add(1, std::memory_order_relaxed);
  }
}

std::uint64_t ErrorStream::dropped_lines() const {
  return dropped_lines_.load(std::memory_order_relaxed);
}

bool ErrorStream::write_locked(std::string_view text, Deadline deadline) {
  if (progress_open_) {
    progress_open_ = false;
    const std::string_view end = tty_ ? "\r\033[K" : "\n";
    if (!write_all(fd_, end.data(), end.size(), deadline)) return false;
  }
  return write_all(fd_, text.data(), text.size(), deadline);
}

}  // namespace procpool::tool
