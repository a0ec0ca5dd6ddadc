#pragma once

#include <cstdint>  // std::uint64_t
#include <string>   // std::string

namespace procpool::detail {

// How a reaped process ended, from its raw wait status: an exit code and a terminating signal are
// different things (exit(9) is not SIGKILL), so they are kept apart.
struct ExitStatus {
  bool signaled = false;
  int code = 0;    // exit code if !signaled
  int signal = 0;  // terminating signal if signaled
  bool core_dumped = false;

  static ExitStatus from_wait_status(int status);
  bool clean() const noexcept { return !signaled && code == 0; }
  // "exit code 3", "killed by signal 11 (SIGSEGV), core dumped"
  std::string describe() const;
};

// Resident memory and CPU time of a live process, from /proc. Zero if it cannot be read.
struct ProcessUsage {
  std::uint64_t rss_bytes = 0;
  double cpu_s = 0;
};
ProcessUsage read_process_usage(int pid);

}  // namespace procpool::detail
