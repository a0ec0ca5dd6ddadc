// Helpers shared by the C++ peer benchmarks (scripts/bench.sh peers). Each peer binary runs ONE
// round of the workloads it supports and prints one docs/workloads.md line per figure,
//   WORKLOAD IMPL FIGURE VALUE UNIT
// without a spread: the orchestrator (scripts/bench_report.py) takes the median over rounds.
// Every result is checked; a wrong answer or a failed system call aborts the peer with a
// message on stderr and a non-zero exit status.
#pragma once

#include <signal.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "bench_stats.hpp"

namespace procpool::bench::peers {

// Prints exactly one figure line and flushes, so partial results survive a later failure.
inline void print_line(std::string_view workload, std::string_view impl, std::string_view figure,
                       double value, std::string_view unit) {
  const std::string v = format_value(value);
  std::printf("%.*s %.*s %.*s %s %.*s\n", static_cast<int>(workload.size()), workload.data(),
              static_cast<int>(impl.size()), impl.data(), static_cast<int>(figure.size()),
              figure.data(), v.c_str(), static_cast<int>(unit.size()), unit.data());
  std::fflush(stdout);
}

// The children this process started; killed (SIGKILL) and reaped by fail() so that no worker is
// left behind, whatever went wrong.
inline std::vector<pid_t>& children() {
  static std::vector<pid_t> pids;
  return pids;
}

inline void forget_child(pid_t pid) {
  auto& pids = children();
  for (auto it = pids.begin(); it != pids.end(); ++it) {
    if (*it == pid) {
      pids.erase(it);
      return;
    }
  }
}

// Called by fail() before exiting (for example to remove named IPC objects). Must be
// async-signal-safe, since the watchdog calls it from a signal handler too.
using CleanupFn = void (*)();
inline CleanupFn& cleanup_hook() {
  static CleanupFn fn = nullptr;
  return fn;
}

[[noreturn]] __attribute__((format(printf, 1, 2))) inline void fail(const char* fmt, ...) {
  const int saved = errno;
  std::fprintf(stderr, "procpool peer: ");
  va_list args;
  va_start(args, fmt);
  std::vfprintf(stderr, fmt, args);
  va_end(args);
  if (saved != 0) std::fprintf(stderr, " (errno: %s)", std::strerror(saved));
  std::fprintf(stderr, "\n");
  for (pid_t pid : children()) {
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
  }
  if (cleanup_hook() != nullptr) cleanup_hook()();
  std::exit(3);
}

// Like fail(), for a wrong result (errno is irrelevant there).
[[noreturn]] __attribute__((format(printf, 1, 2))) inline void wrong(const char* fmt, ...) {
  char msg[512];
  va_list args;
  va_start(args, fmt);
  std::vsnprintf(msg, sizeof msg, fmt, args);
  va_end(args);
  errno = 0;
  fail("wrong result: %s", msg);
}

// Watchdog: if the whole round takes longer than `seconds`, kill the children, run the cleanup
// hook and exit 4. Peers block in calls that have no timeout (message_queue::receive, read on a
// pipe); this bounds every one of them.
inline void watchdog_handler(int) {
  const char msg[] = "procpool peer: watchdog expired, giving up\n";
  if (write(STDERR_FILENO, msg, sizeof msg - 1) < 0) {
  }
  for (pid_t pid : children()) kill(pid, SIGKILL);
  if (cleanup_hook() != nullptr) cleanup_hook()();
  _exit(4);
}

inline void arm_watchdog(unsigned seconds) {
  struct sigaction sa {};
  sa.sa_handler = watchdog_handler;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGALRM, SIGINT, SIGTERM, SIGHUP}) {
    if (sigaction(sig, &sa, nullptr) != 0) fail("sigaction");
  }
  alarm(seconds);
}

// In a forked or spawned worker: die with the parent (the peers never leave a spinning or
// blocked worker behind) and bail out if the parent is already gone.
inline void die_with_parent(pid_t parent) {
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) _exit(1);
  if (getppid() != parent) _exit(1);
}

// Reaps a child that was asked to stop; it must exit with status 0. The watchdog bounds it.
inline void reap_ok(pid_t pid, const char* what) {
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) fail("waitpid(%s)", what);
  }
  forget_child(pid);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    errno = 0;
    fail("%s exited badly (status 0x%x)", what, static_cast<unsigned>(status));
  }
}

// Full-length read/write on a blocking fd (pipes and stream sockets may return short counts).
inline bool read_full(int fd, void* buf, std::size_t len) {
  auto* p = static_cast<char*>(buf);
  while (len > 0) {
    const ssize_t n = read(fd, p, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    len -= static_cast<std::size_t>(n);
  }
  return true;
}

inline bool write_full(int fd, const void* buf, std::size_t len) {
  const auto* p = static_cast<const char*>(buf);
  while (len > 0) {
    const ssize_t n = write(fd, p, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    len -= static_cast<std::size_t>(n);
  }
  return true;
}

// The workloads' sizes (docs/workloads.md).
constexpr std::size_t kL1Warmup = 1'000;
constexpr std::size_t kL1Measured = 20'000;
constexpr std::uint64_t kL1Base = 1'000'000;
constexpr std::size_t kT1Tasks = 200'000;
constexpr std::size_t kT1Window = 1'024;

// Parses "--workload L1,T1" (default: every workload the peer supports).
inline bool wants(int argc, char** argv, std::string_view workload) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::string_view(argv[i]) == "--workload") {
      // Compared item by item in place: concatenating ",item," strings trips GCC 12's spurious
      // -Wrestrict at -O3.
      std::string_view list = argv[i + 1];
      for (;;) {
        const std::size_t comma = list.find(',');
        if (list.substr(0, comma) == workload) return true;
        if (comma == std::string_view::npos) return false;
        list.remove_prefix(comma + 1);
      }
    }
  }
  return true;
}

inline bool has_flag(int argc, char** argv, std::string_view flag) {
  for (int i = 1; i < argc; ++i) {
    if (std::string_view(argv[i]) == flag) return true;
  }
  return false;
}

}  // namespace procpool::bench::peers
