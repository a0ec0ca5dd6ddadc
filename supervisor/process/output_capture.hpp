#pragma once

// An instance's stdout or stderr: a pipe the supervisor reads nonblocking, a bounded amount per
// wake-up (so one chatty program cannot starve the others), into the program's sinks
// (OutputSink). The loop thread holds no lock, so the sinks run outside any lock.
//
// The capture ends at EOF or when its owner closes it; it never waits for EOF on its own: a
// grandchild may keep the pipe open long after the instance's main process exited
// (managed_process.cpp kills the rest of the process group, then drains and closes).

#include <cstddef>      // std::size_t
#include <cstdint>      // std::uint64_t
#include <functional>   // std::function
#include <memory>       // std::shared_ptr
#include <string>       // std::string
#include <string_view>  // std::string_view

#include "procpool/program_spec.hpp"
#include "procpool/unique_fd.hpp"
#include "rotating_file.hpp"
#include "stderr_tail.hpp"

namespace procpool::detail {

// OutputSink::fd. A write never waits for the fd's reader (the supervisor's loop must not
// stop), and the caller's fd keeps its own flags (O_NONBLOCK lives on the open file description,
// which a dup would share):
// - a pipe, FIFO or terminal (a pty slave, a console) gets its own open file description with
//   O_NONBLOCK, reopened through /proc/self/fd;
// - a socket cannot be reopened that way (ENXIO): it is sent to with MSG_DONTWAIT;
// - anything else that is not a regular file (a pty master, another character device, a FIFO
//   whose reopen failed) is written at most PIPE_BUF at a time, and only when poll() says POLLOUT:
//   all that can be done with a blocking description. A pty slave is not left to this: its
//   POLLOUT promises less room than PIPE_BUF once ONLCR turns '\n' into "\r\n", and a write
//   then waits for the reader (tests/process/fd_sink_test.cpp, the terminal test);
// - a regular file (or block device) is written plainly: its writes wait for no reader.
// What cannot go at once is dropped and counted in dropped().
class FdSink {
 public:
  explicit FdSink(int fd);  // throws SystemError
  void write(std::string_view bytes) noexcept;
  std::uint64_t dropped() const noexcept { return dropped_; }

 private:
  enum class Mode : unsigned char { Plain, Nonblocking, Socket, Polled };

  UniqueFd fd_;
  Mode mode_ = Mode::Plain;
  std::uint64_t dropped_ = 0;
};

// What one program's stream goes to, shared by its instances (one file, one fd).
struct SinkSet {
  std::shared_ptr<FdSink> fd;
  std::shared_ptr<RotatingFile> file;
  std::function<void(std::string_view instance, std::string_view line)> on_line;
  std::function<void(std::string_view instance, int pid, std::string_view line)> on_pid_line;
  bool wants_lines() const noexcept { return on_line || on_pid_line; }

  static std::shared_ptr<SinkSet> make(const OutputSink& sink);  // throws SystemError
};

class OutputCapture {
 public:
  static constexpr std::size_t kBudgetPerWake = 64 * 1024;
  static constexpr std::size_t kMaxLine = 64 * 1024;  // longer lines are cut (on_line)

  // Makes the pipe. `on_callback_error` is told when on_line throws (the exception is
  // swallowed: a sink's bug must not take the supervisor down).
  OutputCapture(std::shared_ptr<const SinkSet> sinks, std::string instance,
                std::function<void()> on_callback_error);

  int read_fd() const noexcept { return read_.get(); }
  // The writer's pid, for on_pid_line (known once launched).
  void set_pid(int pid) noexcept { pid_ = pid; }
  int write_fd() const noexcept { return write_.get(); }
  // After the launch: the child holds its own copy.
  void close_write_end() noexcept { write_.reset(); }

  // Reads what is there, at most kBudgetPerWake. False at EOF or a read error. It never closes
  // the fd: the owner unwatches it first, then calls finish() (a closed fd still in an epoll
  // batch could otherwise reach a callback whose capture is gone).
  bool read_some();
  // Reads what the pipe holds when it is called, without blocking, delivers a partial last
  // line, closes the pipe. Bounded by that snapshot (FIONREAD): a writer outside the process
  // group (a setsid'd grandchild) may still be writing, and must not keep the loop here.
  void finish();
  bool at_eof() const noexcept { return eof_ || !read_; }
  bool done() const noexcept { return !read_; }

  const StderrTail& tail() const noexcept { return tail_; }

 private:
  void deliver(std::string_view bytes);
  void emit_line(std::string_view line);

  std::shared_ptr<const SinkSet> sinks_;
  std::string instance_;
  int pid_ = 0;  // set_pid()
  std::function<void()> on_callback_error_;
  UniqueFd read_;
  UniqueFd write_;
  std::string partial_;
  bool eof_ = false;
  StderrTail tail_;
};

}  // namespace procpool::detail
