#include "output_capture.hpp"

#include <fcntl.h>       // open, fcntl, pipe2
#include <poll.h>        // poll
#include <sys/ioctl.h>   // ioctl, FIONREAD, TIOCGPTN
#include <sys/socket.h>  // send
#include <sys/stat.h>    // fstat
#include <unistd.h>      // read, write, dup, isatty

#include <algorithm>  // std::min
#include <cerrno>     // errno
#include <climits>    // PIPE_BUF
#include <utility>    // std::move

#include "procpool/error.hpp"

namespace procpool::detail {

namespace {

// What finish() reads at most should FIONREAD fail: the default fs.pipe-max-size, the most a
// pipe can hold unless root raised it.
constexpr std::size_t kFinishFallback = 1024 * 1024;

// A pty master: reopening it through /proc/self/fd would open /dev/ptmx, a new pty.
bool is_pty_master(int fd) noexcept {
  unsigned int number = 0;
  return ::ioctl(fd, TIOCGPTN, &number) == 0;
}

// A new open file description of what `fd` names, with O_NONBLOCK, or -1.
int reopen_nonblocking(int fd) noexcept {
  const std::string proc = "/proc/self/fd/" + std::to_string(fd);
  return ::open(proc.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
}

}  // namespace

FdSink::FdSink(int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw_errno(errno, "output sink fd " + std::to_string(fd));
  if (S_ISREG(st.st_mode) || S_ISBLK(st.st_mode)) {
    mode_ = Mode::Plain;
  } else if (S_ISSOCK(st.st_mode)) {
    mode_ = Mode::Socket;  // open() of a socket's /proc/self/fd link fails with ENXIO
  } else if (S_ISFIFO(st.st_mode) || (::isatty(fd) == 1 && !is_pty_master(fd))) {
    fd_.reset(reopen_nonblocking(fd));
    // ENXIO for a FIFO with no reader at the moment, EIO for a pty whose master is gone ...
    mode_ = fd_ ? Mode::Nonblocking : Mode::Polled;
  } else {
    mode_ = Mode::Polled;
  }
  if (!fd_) fd_.reset(::fcntl(fd, F_DUPFD_CLOEXEC, 3));
  if (!fd_) throw_errno(errno, "output sink fd " + std::to_string(fd));
}

void FdSink::write(std::string_view bytes) noexcept {
  while (!bytes.empty()) {
    ssize_t n = 0;
    switch (mode_) {
      case Mode::Plain:
      case Mode::Nonblocking:
        n = ::write(fd_.get(), bytes.data(), bytes.size());
        break;
      case Mode::Socket:
        // Per call, so the socket's own flags (shared with the caller's fd) stay as they are.
        n = ::send(fd_.get(), bytes.data(), bytes.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
        break;
      case Mode::Polled: {
        // The fd may block (its flags are the caller's): write only what POLLOUT promises room
        // for, PIPE_BUF for a pipe.
        pollfd ready{fd_.get(), POLLOUT, 0};
        const int polled = ::poll(&ready, 1, 0);
        if (polled < 0 && errno == EINTR) continue;
        if (polled != 1 || (ready.revents & POLLOUT) == 0 ||
            (ready.revents & (POLLERR | POLLHUP | POLLNVAL)) != 0) {
          n = -1;
          break;
        }
        n = ::write(fd_.get(), bytes.data(), std::min<std::size_t>(bytes.size(), PIPE_BUF));
        break;
      }
    }
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {  // EAGAIN (full), EPIPE (reader gone; SIGPIPE is blocked on the loop thread)
      dropped_ += bytes.size();
      return;
    }
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
}

std::shared_ptr<SinkSet> SinkSet::make(const OutputSink& sink) {
  auto set = std::make_shared<SinkSet>();
  if (sink.fd >= 0) set->fd = std::make_shared<FdSink>(sink.fd);
  if (!sink.file.empty()) {
    set->file = std::make_shared<RotatingFile>(sink.file, sink.max_bytes, sink.keep);
  }
  set->on_line = sink.on_line;
  set->on_pid_line = sink.on_pid_line;
  return set;
}

OutputCapture::OutputCapture(std::shared_ptr<const SinkSet> sinks, std::string instance,
                             std::function<void()> on_callback_error)
    : sinks_(std::move(sinks)),
      instance_(std::move(instance)),
      on_callback_error_(std::move(on_callback_error)) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) throw_errno(errno, "pipe2");
  read_.reset(fds[0]);
  write_.reset(fds[1]);
  if (::fcntl(read_.get(), F_SETFL, O_NONBLOCK) != 0) throw_errno(errno, "fcntl(O_NONBLOCK)");
}

bool OutputCapture::read_some() {
  if (!read_ || eof_) return false;
  char buffer[16 * 1024];
  std::size_t budget = kBudgetPerWake;
  while (budget > 0) {
    const ssize_t n = ::read(read_.get(), buffer, std::min(sizeof buffer, budget));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return true;
    if (n <= 0) {
      eof_ = true;
      return false;
    }
    deliver(std::string_view(buffer, static_cast<std::size_t>(n)));
    budget -= static_cast<std::size_t>(n);
  }
  return true;
}

void OutputCapture::finish() {
  if (read_ && !eof_) {
    // What the pipe holds now, and no more. The group's writers are gone or killed, but one that
    // left the group (setsid) may keep writing, and reading until EAGAIN would then never end.
    int held = 0;
    std::size_t left = ::ioctl(read_.get(), FIONREAD, &held) == 0 && held >= 0
                           ? static_cast<std::size_t>(held)
                           : kFinishFallback;
    char buffer[16 * 1024];
    while (left > 0) {
      const ssize_t n = ::read(read_.get(), buffer, std::min(sizeof buffer, left));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      deliver(std::string_view(buffer, static_cast<std::size_t>(n)));
      left -= static_cast<std::size_t>(n);
    }
  }
  read_.reset();
  if (!partial_.empty()) {
    emit_line(partial_);
    partial_.clear();
  }
}

void OutputCapture::deliver(std::string_view bytes) {
  tail_.append(bytes);
  if (sinks_->fd) sinks_->fd->write(bytes);
  if (sinks_->file) sinks_->file->write(bytes);
  if (!sinks_->wants_lines()) return;
  while (!bytes.empty()) {
    const auto nl = bytes.find('\n');
    if (nl == std::string_view::npos) {
      partial_.append(bytes.substr(0, kMaxLine - std::min(kMaxLine, partial_.size())));
      return;
    }
    if (partial_.empty()) {
      emit_line(bytes.substr(0, std::min(nl, kMaxLine)));
    } else {
      partial_.append(
          bytes.substr(0, std::min(nl, kMaxLine - std::min(kMaxLine, partial_.size()))));
      emit_line(partial_);
      partial_.clear();
    }
    bytes.remove_prefix(nl + 1);
  }
}

void OutputCapture::emit_line(std::string_view line) {
  if (!sinks_->wants_lines()) return;
  try {
    if (sinks_->on_line) sinks_->on_line(instance_, line);
    if (sinks_->on_pid_line) sinks_->on_pid_line(instance_, pid_, line);
  } catch (...) {
    if (on_callback_error_) on_callback_error_();
  }
}

}  // namespace procpool::detail
