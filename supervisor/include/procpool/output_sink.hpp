#pragma once
#include "procpool/detail/require_cxx20.hpp"

// Where a child's stdout or stderr goes: the programs of procpool::Supervisor (ProgramSpec) and
// the workers of procpool::Pool (PoolOptions) use the same sinks (docs/supervisor.md, "Output").

#include <cstdint>      // std::uint64_t
#include <functional>   // OutputSink::on_line
#include <string>       // std::string
#include <string_view>  // std::string_view

namespace procpool {

// Where one output stream (stdout or stderr) of an instance goes. Every part that is set gets
// every byte; none set drops the stream (the stderr tail for exit reports is kept either way).
struct OutputSink {
  // Copied to this fd, which the caller keeps open for the supervisor's lifetime. A write never
  // waits: a pipe, socket or terminal with no room drops the bytes rather than stall the
  // supervisor (the caller's fd keeps its own flags). -1: none.
  int fd = -1;
  // Each complete line (without its '\n'; a partial last line is delivered at exit), with the
  // instance's name ("web:0"; a pool worker's is "worker:<slot>"). Called on the supervisor's
  // thread, outside any lock: keep it short.
  std::function<void(std::string_view instance, std::string_view line)> on_line;
  // The same with the pid of the process whose stdout or stderr it is (its main process; a
  // child's line through the inherited pipe counts as its parent's), to tell apart two runs of
  // one instance whose lines interleave (a rolling update's old and new instance). Either or
  // both may be set.
  std::function<void(std::string_view instance, int pid, std::string_view line)> on_pid_line;
  // Appended to this file (created 0600). When it holds max_bytes it is rotated: path ->
  // path.1 -> ... -> path.keep, the oldest removed (lines may be split across two files).
  // stdout_sink and stderr_sink naming the same file share one writer, so one rotation.
  // Empty: none.
  std::string file;
  std::uint64_t max_bytes = 10 * 1024 * 1024;
  unsigned keep = 3;

  static OutputSink to_fd(int fd) {
    OutputSink sink;
    sink.fd = fd;
    return sink;
  }
  static OutputSink none() { return OutputSink{}; }
};

}  // namespace procpool
