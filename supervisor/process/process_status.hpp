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
  // False when another waiter in this process reaped it first (a host's SIGCHLD handler calling
  // waitpid(-1)): it exited, and how is lost.
  bool known = true;

  static ExitStatus from_wait_status(int status);
  static ExitStatus unknown() noexcept {
    ExitStatus status;
    status.known = false;
    status.code = -1;
    return status;
  }
  bool clean() const noexcept { return known && !signaled && code == 0; }
  // "exit code 3", "killed by signal 11 (SIGSEGV), core dumped", "exit status unknown ..."
  std::string describe() const;
};

// Resident memory and CPU time of a live process, from /proc. Zero if it cannot be read.
struct ProcessUsage {
  std::uint64_t rss_bytes = 0;
  double cpu_s = 0;
};
ProcessUsage read_process_usage(int pid);

}  // namespace procpool::detail
