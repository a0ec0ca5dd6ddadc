#pragma once

// Support shared by the fault tests of procpool::Pool (pool_crash_test, pool_timeout_cancel_test,
// pool_worker_limits_test and pool_shutdown_test): the worker a task ran on, a slot's metrics and
// whether it was refilled, the /proc readings (process state, fds, the current syscall, CPU time)
// and the PoolFault fixture.

#include <gtest/gtest.h>
#include <sys/resource.h>  // setrlimit (no core files from crashing workers)
#include <unistd.h>        // readlink

#include <chrono>    // durations
#include <cstddef>   // std::size_t
#include <cstdint>   // std::uint64_t
#include <fstream>   // std::ifstream
#include <optional>  // std::optional
#include <sstream>   // std::istringstream
#include <string>    // std::string
#include <vector>    // std::vector

#include "pool_test_support.hpp"  // Watchdog, value_of, poll_until, directory_entries, /proc readings
#include "procpool/pool.hpp"
#include "test_workers.hpp"  // small_pool

namespace procpool::test {

inline int pid_of(Pool& pool, const TaskOptions& options = {}) {
  auto future = pool.submit("pid", "", options);
  const std::string text = value_of(future);
  return text.empty() ? 0 : std::stoi(text);
}

inline std::optional<WorkerMetrics> slot_metrics(const Pool& pool, unsigned slot = 0) {
  for (const WorkerMetrics& w : pool.metrics().workers) {
    if (w.slot == slot) return w;
  }
  return std::nullopt;
}

// The single-worker pool's one worker is READY with an incarnation above `incarnation`, and the
// one it replaced is gone (a recycle's replacement starts in another slot, docs/pool.md).
inline bool replaced_since(const Pool& pool, std::uint64_t incarnation) {
  const std::vector<WorkerMetrics> workers = pool.metrics().workers;
  return workers.size() == 1 && workers[0].incarnation > incarnation &&
         workers[0].state == WorkerMetrics::State::Ready;
}

// --- /proc helpers ---

inline char process_state(int pid) {
  char state = '?';
  long ppid = 0;
  return read_state_and_ppid(std::to_string(pid), state, ppid) ? state : '?';
}

inline std::string fd_target(const std::string& fd_dir, const std::string& fd) {
  char buffer[4096];
  const ssize_t n = ::readlink((fd_dir + "/" + fd).c_str(), buffer, sizeof buffer - 1);
  return n < 0 ? std::string("?") : std::string(buffer, static_cast<std::size_t>(n));
}

inline std::string describe_fds(const std::string& fd_dir) {
  std::string out;
  for (const std::string& fd : directory_entries(fd_dir)) {
    out += "  " + fd + " -> " + fd_target(fd_dir, fd) + "\n";
  }
  return out;
}

// The syscall a process's main thread is in (from /proc/<pid>/syscall), -1 if running or unknown.
inline long current_syscall(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/syscall");
  long number = -1;
  if (!(in >> number)) return -1;
  return number;
}

// CPU time (user + system, clock ticks) a process has used, from /proc/<pid>/stat; -1 if gone.
inline long long cpu_ticks(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return -1;
  const auto close = line.rfind(')');
  if (close == std::string::npos || close + 2 >= line.size()) return -1;
  std::istringstream rest(line.substr(close + 2));
  std::string field;
  long long utime = 0, stime = 0;
  for (int i = 0; i < 11; ++i) rest >> field;  // state .. cmajflt
  if (!(rest >> utime >> stime)) return -1;
  return utime + stime;
}

// Waits (bounded) until the worker's spinning "hang" handler is observably running: the process
// burns CPU continuously (an idle worker spins at most ~50 us per wait, then sleeps).
inline bool wait_until_spinning(int pid) {
  const long long start = cpu_ticks(pid);
  return start >= 0 && poll_until([&] { return cpu_ticks(pid) >= start + 3; });
}

// --- the fixture ---

class PoolFault : public ::testing::Test {
 protected:
  void SetUp() override {
    // Crashing workers inherit this: no core files (and no core-dump delay) from them.
    rlimit limit{};
    if (::getrlimit(RLIMIT_CORE, &limit) == 0) {
      limit.rlim_cur = 0;
      ::setrlimit(RLIMIT_CORE, &limit);
    }
  }

  static PoolOptions crashy(unsigned workers = 1) { return small_pool("crashy", workers); }

  // The whole test, destructors included.
  static constexpr std::chrono::milliseconds kTestBound = std::chrono::seconds(90);
  Watchdog watchdog_{kTestBound};
};

}  // namespace procpool::test
