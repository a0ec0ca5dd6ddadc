#pragma once
#include "procpool/detail/require_cxx20.hpp"

#include <atomic>   // std::atomic
#include <cstddef>  // offsetof
#include <cstdint>  // std::uint32_t, std::uint64_t

#include "procpool/cache_line.hpp"

namespace procpool {

// A worker's life as it reports it in its control block. Advisory: the supervisor decides what a
// worker is from its own records and the process's exit, and uses this only as a hint.
enum class WorkerState : std::uint32_t {
  kStarting = 0,  // mapped the segment, registering handlers
  kReady = 1,     // serving tasks
  kStopping = 2,  // told to stop (SIGTERM or a shutdown frame), finishing its current task
  kStopped = 3,   // about to exit normally
};

// The worker's control block in its segment: health the supervisor watches by PID without a
// message round trip, and the few flags the supervisor raises for the worker.
//
// Every field the worker writes is untrusted: the supervisor loads each once, range-checks it, and
// never lets a value drive a memory access (docs/design-rules.md §17).
struct WorkerControl {
  // Cache line 0 — written by the worker only.
  alignas(kCacheLineSize) std::atomic<std::uint32_t> state{0};  // a WorkerState value
  std::atomic<std::uint32_t> pid{0};                            // getpid() as the worker sees it
  std::atomic<std::uint64_t> heartbeat_ms{0};  // CLOCK_MONOTONIC milliseconds, per interval
  std::atomic<std::uint64_t> tasks_done{0};    // tasks answered with a result
  std::atomic<std::uint64_t> tasks_failed{0};  // tasks answered with an error
  // The id of the task whose handler is running (0: none). Stored before the handler is called
  // and cleared after its answer is written, so when the worker dies the supervisor knows which
  // task on board it was running: that one spends an attempt, the others never started.
  std::atomic<std::uint64_t> current_task_id{0};
  // Cache line 1 — written by the supervisor only.
  alignas(kCacheLineSize) std::atomic<std::uint32_t> stop_requested{0};  // 1: finish and exit
  std::atomic<std::uint32_t> reserved{0};
  // The task the supervisor asks the worker to abandon while it runs (0: none). A running
  // handler polls it through Task::cancelled(); the supervisor kills the worker after a grace
  // period if the handler does not return.
  std::atomic<std::uint64_t> cancel_task_id{0};
};

static_assert(sizeof(WorkerControl) == 2 * kCacheLineSize, "WorkerControl is segment layout");
static_assert(offsetof(WorkerControl, stop_requested) == kCacheLineSize,
              "worker- and supervisor-written fields must not share a cache line");

}  // namespace procpool
