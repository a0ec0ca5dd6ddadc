#pragma once

// The chaos workload (issue 4, docs/workloads.md X1 scaled up; issue 10): increments through a
// procpool::Pool while a killer thread SIGKILLs a random worker every kill_min..kill_max. The
// pool runs with default options apart from max_attempts: no tuning of the restart policy.
// It checks that every task resolves exactly once with the right answer, and reports what a
// person needs to judge a run: tasks, kills, restarts, retried, failed, the supervisor's RSS,
// wrong / lost / duplicated answers, zombies, file descriptors in the workers, /dev/shm before
// and after, and the wall time of the task stream, to compare with the same run without kills.
//
// Used by the chaos test (tests/pool/pool_chaos_test.cpp) and by scripts/soak.sh
// (procpool-soak). Every wait is bounded by ChaosConfig::deadline.

#include <chrono>   // durations
#include <cstdint>  // std::uint64_t
#include <string>   // std::string
#include <vector>   // std::vector

namespace procpool::chaos {

struct ChaosConfig {
  std::string worker;       // the crashy example worker (its "spin_increment" handler)
  std::uint64_t tasks = 0;  // stop after this many tasks (0: run for `duration`)
  std::chrono::seconds duration{0};
  unsigned workers = 2;
  unsigned window = 256;      // tasks outstanding at most
  unsigned spin_us = 200;     // busy work per task in the worker
  unsigned max_attempts = 6;  // PoolOptions::max_attempts, the one option the run sets
  bool kill = true;           // false: the same run without the killer (the baseline)
  std::chrono::milliseconds kill_min{100};
  std::chrono::milliseconds kill_max{250};
  std::chrono::seconds deadline{600};  // the whole run, pool shutdown included
  std::uint64_t seed = 1;
};

struct ChaosReport {
  std::uint64_t submitted = 0;
  std::uint64_t completed = 0;   // resolved once with the right answer
  std::uint64_t failed = 0;      // resolved with an error
  std::uint64_t wrong = 0;       // resolved with a wrong answer
  std::uint64_t duplicated = 0;  // resolved more than once
  std::uint64_t lost = 0;        // never resolved by the deadline
  std::uint64_t kills = 0;       // SIGKILLs sent
  std::uint64_t restarts = 0;    // as the pool counted them
  std::uint64_t retried = 0;
  std::uint64_t supervisor_rss_start = 0;  // bytes, after warm-up
  std::uint64_t supervisor_rss_end = 0;    // bytes, before the pool is destroyed
  std::uint64_t checker_bytes = 0;         // the checker's own 1 byte per task, inside that RSS
  double elapsed_s = 0;       // the whole run: start-up, warm-up, stream, checks, shutdown
  double wall_s = 0;          // the stream: its first task submitted to its last one resolved
  bool served_after = false;  // the pool answered a task after the last kill
  std::vector<std::string> anomalies;  // zombies, unexpected worker fds, /dev/shm changes, ...

  bool clean() const noexcept {
    return anomalies.empty() && failed == 0 && wrong == 0 && duplicated == 0 && lost == 0 &&
           served_after && completed == submitted;
  }
  // One line per figure, "name value".
  std::string text() const;
};

// Runs the workload. Throws procpool::Error if the pool cannot start.
ChaosReport run_chaos(const ChaosConfig& config);

// The workload with kills next to the same workload without them, in one process.
struct ChaosComparison {
  ChaosReport baseline;  // kill = false
  ChaosReport chaos;

  // Wall time of the stream with kills over without (0 if the baseline has no wall time).
  double ratio() const noexcept { return baseline.wall_s > 0 ? chaos.wall_s / baseline.wall_s : 0; }
  bool clean() const noexcept { return baseline.clean() && chaos.clean(); }
  // The chaos report, then "wall_without_kills_s", "ratio" and the baseline's anomalies.
  std::string text() const;
};

// The baseline first (config.kill ignored), then the run with kills.
ChaosComparison run_chaos_and_baseline(const ChaosConfig& config);

}  // namespace procpool::chaos
