#pragma once
#include "procpool/detail/require_cxx20.hpp"

#include <array>        // LatencySummary's buckets
#include <cstdint>      // std::uint64_t
#include <string>       // std::string
#include <string_view>  // to_string
#include <vector>       // std::vector

namespace procpool {

// Health of one worker process, keyed by slot and incarnation (a pid is only valid between
// spawn and reap).
struct WorkerMetrics {
  unsigned slot = 0;
  std::uint64_t incarnation = 0;
  int pid = 0;
  // What the slot is doing.
  enum class State : std::uint8_t {
    Empty,      // no process, none wanted (not listed in PoolMetrics::workers)
    Starting,   // spawned, not READY yet
    Ready,      // serving
    Draining,   // serving its tasks on board, no new ones (recycling)
    Stopping,   // asked to exit
    Backoff,    // its worker died; restarts after a backoff
    CrashLoop,  // in backoff after crash_loop_after broken starts in a row (RestartPolicy)
  };
  State state = State::Empty;
  double started_unix_s = 0;  // wall-clock start time
  double uptime_s = 0;
  double idle_s = 0;               // since the worker last finished or received a task
  std::uint64_t tasks_done = 0;    // answered with a result (this incarnation)
  std::uint64_t tasks_failed = 0;  // answered with an error (this incarnation)
  // The same over every incarnation of the slot (they survive restarts).
  std::uint64_t slot_tasks_done = 0;
  std::uint64_t slot_tasks_failed = 0;
  double last_active_unix_s = 0;      // wall-clock time it last finished or received a task
  unsigned consecutive_failures = 0;  // broken starts in a row (RestartPolicy)
  unsigned inflight = 0;
  unsigned pipeline_depth = 0;  // tasks it may have on board now (fixed, or adaptive)
  std::uint64_t restarts = 0;   // times this slot's worker was replaced after dying
  std::uint64_t rss_bytes = 0;  // from /proc/<pid>/statm
  double cpu_s = 0;             // user + system, from /proc/<pid>/stat
};

// Percentiles of a latency, from a log-scale histogram (bucket resolution about 6%).
struct LatencySummary {
  // The upper bounds of `cumulative`, in microseconds: 10 us to 60 s.
  static constexpr std::array<double, 20> kBoundsUs = {10,    25,  50,    100,   250, 500, 1e3,
                                                       2.5e3, 5e3, 1e4,   2.5e4, 5e4, 1e5, 2.5e5,
                                                       5e5,   1e6, 2.5e6, 5e6,   1e7, 6e7};
  std::uint64_t count = 0;
  double p50_us = 0, p90_us = 0, p99_us = 0, max_us = 0;
  double sum_us = 0;  // of every sample
  // cumulative[i]: the samples at or below kBoundsUs[i], for a histogram (Prometheus'
  // _bucket{le}). Counted by log-scale bucket: a bucket straddling a bound counts above it, so
  // a count may be low by the samples within ~6% under the bound.
  std::array<std::uint64_t, kBoundsUs.size()> cumulative{};
};

struct PoolMetrics {
  // What the pool is doing.
  enum class State : std::uint8_t {
    Running,
    ShuttingDown,  // shutdown() or terminate() asked; draining
    Stopped,       // the supervisor thread is done
    Failed,        // RestartPolicy gave up (tasks fail TaskError::Kind::PoolFailed)
  };
  State state = State::Running;
  std::vector<WorkerMetrics> workers;
  std::uint64_t queued = 0;     // waiting for a worker
  std::uint64_t running = 0;    // dispatched, not yet resolved
  std::uint64_t completed = 0;  // resolved with a result
  std::uint64_t failed = 0;     // resolved with an error (any kind)
  std::uint64_t retried = 0;    // dispatched again after a worker crash
  // Tasks the pool sent packed with others in one frame, because they were queued while the
  // workers were busy (docs/pool.md, "Coalescing").
  std::uint64_t coalesced = 0;
  std::uint64_t restarts = 0;  // workers replaced after dying
  // Completion or item callbacks that threw (each reported on stderr; the pool went on).
  std::uint64_t callback_errors = 0;
  LatencySummary queue_wait;  // submit -> dispatch
  LatencySummary run_time;    // dispatch -> result

  // The same as a JSON object (Boost.JSON).
  std::string to_json() const;
};

// The names metrics_json() and the docs use.
constexpr std::string_view to_string(WorkerMetrics::State state) noexcept {
  switch (state) {
    case WorkerMetrics::State::Empty:
      return "empty";
    case WorkerMetrics::State::Starting:
      return "starting";
    case WorkerMetrics::State::Ready:
      return "ready";
    case WorkerMetrics::State::Draining:
      return "draining";
    case WorkerMetrics::State::Stopping:
      return "stopping";
    case WorkerMetrics::State::Backoff:
      return "backoff";
    case WorkerMetrics::State::CrashLoop:
      return "crash_loop";
  }
  return "unknown";
}

constexpr std::string_view to_string(PoolMetrics::State state) noexcept {
  switch (state) {
    case PoolMetrics::State::Running:
      return "running";
    case PoolMetrics::State::ShuttingDown:
      return "shutting_down";
    case PoolMetrics::State::Stopped:
      return "stopped";
    case PoolMetrics::State::Failed:
      return "failed";
  }
  return "unknown";
}

}  // namespace procpool
