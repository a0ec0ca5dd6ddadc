#pragma once

// Standard error of the procpool tool, shared by its main thread (messages, the progress line)
// and the workers' output (the pool's line sinks, PoolOptions::worker_stdout and worker_stderr,
// on the pool's supervisor thread), so that nothing lands inside the progress line: one lock,
// and an unfinished progress line is ended (or, on a terminal, cleared and redrawn later)
// before anything else is written.

#include <atomic>       // the drop count
#include <chrono>       // deadlines
#include <cstddef>      // std::size_t
#include <cstdint>      // std::uint64_t
#include <mutex>        // std::mutex
#include <optional>     // std::optional
#include <string_view>  // std::string_view

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
  // The pool's supervisor thread: one line of a worker's output, ended with a newline. It must
  // not stall the pool: it waits at most kRelayWait (for the lock, then for room), and once a
  // line could not go, the next ones are dropped without waiting until our stderr has room.
  static constexpr std::chrono::milliseconds kRelayWait{200};
  void relay_line(std::string_view line);
  // Worker lines dropped, in whole or in part, because our stderr was not being read.
  std::uint64_t dropped_lines() const;

 private:
  // Under mutex_: ends an unfinished progress line, then writes `text`. False if not all of it
  // went (errno set).
  bool write_locked(std::string_view text, Deadline deadline);

  std::mutex mutex_;
  const int fd_;
  const bool tty_;
  bool progress_open_ = false;  // a progress line was written and not ended
  bool relay_stalled_ = false;  // a worker line timed out; drop until there is room
  std::atomic<std::uint64_t> dropped_lines_{0};  // counted also without the lock
};

}  // namespace procpool::tool
