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

// OutputSink::fd. When the fd is a pipe or FIFO it gets its own open file description with
// O_NONBLOCK (reopened through /proc/self/fd), so a full pipe drops bytes instead of blocking
// the supervisor, and the caller's fd keeps its own flags.
class FdSink {
 public:
  explicit FdSink(int fd);  // throws SystemError
  void write(std::string_view bytes) noexcept;
  std::uint64_t dropped() const noexcept { return dropped_; }

 private:
  UniqueFd fd_;
  std::uint64_t dropped_ = 0;
};

// What one program's stream goes to, shared by its instances (one file, one fd).
struct SinkSet {
  std::shared_ptr<FdSink> fd;
  std::shared_ptr<RotatingFile> file;
  std::function<void(std::string_view instance, std::string_view line)> on_line;

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
  int write_fd() const noexcept { return write_.get(); }
  // After the launch: the child holds its own copy.
  void close_write_end() noexcept { write_.reset(); }

  // Reads what is there, at most kBudgetPerWake. False at EOF or a read error. It never closes
  // the fd: the owner unwatches it first, then calls finish() (a closed fd still in an epoll
  // batch could otherwise reach a callback whose capture is gone).
  bool read_some();
  // Reads what is left without blocking, delivers a partial last line, closes the pipe.
  void finish();
  bool at_eof() const noexcept { return eof_ || !read_; }
  bool done() const noexcept { return !read_; }

  const StderrTail& tail() const noexcept { return tail_; }

 private:
  void deliver(std::string_view bytes);
  void emit_line(std::string_view line);

  std::shared_ptr<const SinkSet> sinks_;
  std::string instance_;
  std::function<void()> on_callback_error_;
  UniqueFd read_;
  UniqueFd write_;
  std::string partial_;
  bool eof_ = false;
  StderrTail tail_;
};

}  // namespace procpool::detail
