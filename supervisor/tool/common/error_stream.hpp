#pragma once

// Standard error of the procpool tool, shared by its main thread (messages, the progress line)
// and the relay of the workers' output (StderrRelay), so that nothing lands inside the progress
// line: one lock, and an unfinished progress line is ended (or, on a terminal, cleared and
// redrawn later) before anything else is written.
//
// Why a relay: the pool copies each worker's stderr to our file descriptor 2 as it comes, and
// the workers' stdout is our file descriptor 1. StderrRelay points both at a pipe drained by a
// thread of its own, which writes whole lines through the ErrorStream; the real standard error
// lives on under a private descriptor.

#include <chrono>       // deadlines
#include <cstddef>      // std::size_t
#include <mutex>        // std::mutex
#include <optional>     // std::optional
#include <string_view>  // std::string_view
#include <thread>       // the relay thread

namespace procpool::tool {

using Deadline = std::optional<std::chrono::steady_clock::time_point>;

// write(2) all of it: retries EINTR, waits for room on a non-blocking fd. False with errno set.
// With a deadline it waits for room only until then (false, ETIMEDOUT), and writes at most
// PIPE_BUF bytes once poll(2) says there is room, so that no write(2) blocks on a pipe. If
// `written` is given, it is set to how many bytes were written, also when it fails.
bool write_all(int fd, const char* data, std::size_t size, Deadline deadline = std::nullopt,
               std::size_t* written = nullptr);

class ErrorStream {
 public:
  ErrorStream(int fd, bool tty) : fd_(fd), tty_(tty) {}
  ErrorStream(const ErrorStream&) = delete;
  ErrorStream& operator=(const ErrorStream&) = delete;

  int fd() const noexcept { return fd_; }
  bool tty() const noexcept { return tty_; }

  // Main thread: `text`, after ending an unfinished progress line. With a deadline, what the
  // reader has not taken by then is dropped. While it waits, a second SIGINT/SIGTERM ends the
  // process (InterruptSignals::BlockingWrite).
  void message(std::string_view text, Deadline deadline = std::nullopt);
  // Main thread: a progress line, as is ("\r..."); left unfinished unless `final`.
  void progress(std::string_view line, bool final);
  // Relay thread: worker output, whole lines.
  void relay(std::string_view lines);

 private:
  // Under mutex_: ends an unfinished progress line, then writes `text`.
  void write_locked(std::string_view text, Deadline deadline);

  std::mutex mutex_;
  const int fd_;
  const bool tty_;
  bool progress_open_ = false;  // a progress line was written and not ended
};

class StderrRelay {
 public:
  // Points file descriptors 1 and 2 at the relay's pipe and starts the relay thread. Throws
  // procpool::Error if the pipe, the descriptors or the thread cannot be set up.
  explicit StderrRelay(ErrorStream& stream);
  // Points 1 and 2 back at the real standard error, relays what is still in the pipe (without
  // waiting for a writer that is still alive), and joins the thread.
  ~StderrRelay();
  StderrRelay(const StderrRelay&) = delete;
  StderrRelay& operator=(const StderrRelay&) = delete;

 private:
  void run();

  ErrorStream& stream_;
  int read_fd_ = -1;
  int stop_fd_ = -1;
  std::thread thread_;
};

}  // namespace procpool::tool
