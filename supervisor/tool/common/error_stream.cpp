#include "common/error_stream.hpp"

#include <fcntl.h>        // pipe2, O_NONBLOCK
#include <limits.h>       // PIPE_BUF
#include <poll.h>         // poll
#include <sys/eventfd.h>  // the relay's stop
#include <unistd.h>       // read, write, dup2, close

#include <algorithm>  // std::min
#include <cerrno>     // errno
#include <string>     // the relay's pending bytes

#include "common/interrupt_signals.hpp"
#include "procpool/error.hpp"

namespace procpool::tool {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int kWaitMs = 1000;  // every wait is bounded
// A worker line longer than this is relayed in pieces, each ended with a newline.
constexpr std::size_t kMaxRelayLine = 64 * 1024;

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
  write_locked(text, deadline);
}

void ErrorStream::progress(std::string_view line, bool final) {
  const InterruptSignals::BlockingWrite may_block;
  std::lock_guard lock(mutex_);
  (void)write_all(fd_, line.data(), line.size());
  progress_open_ = !final;
}

void ErrorStream::relay(std::string_view lines) {
  std::lock_guard lock(mutex_);
  write_locked(lines, std::nullopt);
}

void ErrorStream::write_locked(std::string_view text, Deadline deadline) {
  if (progress_open_) {
    progress_open_ = false;
    const std::string_view end = tty_ ? "\r\033[K" : "\n";
    if (!write_all(fd_, end.data(), end.size(), deadline)) return;
  }
  (void)write_all(fd_, text.data(), text.size(), deadline);  // nowhere to report a failure
}

StderrRelay::StderrRelay(ErrorStream& stream) : stream_(stream) {
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) throw_errno(errno, "stderr relay: pipe2");
  read_fd_ = pipe_fds[0];
  ::fcntl(read_fd_, F_SETFL, O_NONBLOCK);
  stop_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  // dup2 leaves 1 and 2 inheritable: the workers' stdout is our 1.
  const bool moved = stop_fd_ >= 0 && ::dup2(pipe_fds[1], STDOUT_FILENO) >= 0 &&
                     ::dup2(pipe_fds[1], STDERR_FILENO) >= 0;
  const int error = errno;
  ::close(pipe_fds[1]);
  if (moved) {
    try {
      thread_ = start_thread_without_signals([this] { run(); });
      return;
    } catch (const std::system_error& e) {
      ::dup2(stream_.fd(), STDOUT_FILENO);
      ::dup2(stream_.fd(), STDERR_FILENO);
      ::close(read_fd_);
      ::close(stop_fd_);
      throw Error(std::string("stderr relay: cannot start its thread: ") + e.what());
    }
  }
  ::dup2(stream_.fd(), STDOUT_FILENO);
  ::dup2(stream_.fd(), STDERR_FILENO);
  ::close(read_fd_);
  if (stop_fd_ >= 0) ::close(stop_fd_);
  throw_errno(error, "stderr relay: set up file descriptors 1 and 2");
}

StderrRelay::~StderrRelay() {
  ::dup2(stream_.fd(), STDOUT_FILENO);  // closes our ends of the pipe: new writes go straight
  ::dup2(stream_.fd(), STDERR_FILENO);
  ::eventfd_write(stop_fd_, 1);
  thread_.join();
  ::close(read_fd_);
  ::close(stop_fd_);
}

// Reads what the pipe holds whenever it is readable, and relays it up to its last newline; a
// partial line waits for the rest of it (or for the stop, or for kMaxRelayLine bytes), and is
// then ended with a newline, since the progress line would otherwise be drawn over it.
void StderrRelay::run() {
  std::string pending;
  char buffer[16384];
  for (;;) {
    pollfd fds[2] = {{read_fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
    ::poll(fds, 2, kWaitMs);
    bool stopping = (fds[1].revents & POLLIN) != 0;
    for (;;) {
      const ssize_t n = ::read(read_fd_, buffer, sizeof buffer);
      if (n > 0) {
        pending.append(buffer, static_cast<std::size_t>(n));
        continue;
      }
      if (n == 0) stopping = true;  // every writer is gone
      if (n < 0 && errno == EINTR) continue;
      break;
    }
    std::size_t end = pending.rfind('\n');
    end = end == std::string::npos ? 0 : end + 1;
    if (stopping || pending.size() - end >= kMaxRelayLine) end = pending.size();
    if (end != 0) {
      if (pending[end - 1] != '\n') pending.insert(end++, 1, '\n');
      stream_.relay(std::string_view(pending).substr(0, end));
      pending.erase(0, end);
    }
    if (stopping) return;
  }
}

}  // namespace procpool::tool
