#pragma once
#include "procpool/detail/require_cxx20.hpp"

#include <atomic>   // std::atomic
#include <cstddef>  // offsetof
#include <cstdint>  // std::uint32_t, std::uint64_t

#include "procpool/cache_line.hpp"

namespace procpool {

// The worker's control block in its segment: what the supervisor needs to know about a worker
// without a message round trip, and the one request it makes without a frame. Only fields
// someone reads are here: every shared field is one more thing a hostile peer can scribble on.
//
// Every field the worker writes is untrusted: the supervisor loads each once, range-checks it, and
// never lets a value drive a memory access (docs/design-rules.md §17).
struct WorkerControl {
  // Cache line 0 — written by the worker only; read by the supervisor.
  // CLOCK_MONOTONIC milliseconds, stored before READY and once per heartbeat interval while the
  // worker is awake (not while it sleeps for frames): the supervisor's hang detection, for
  // workers with tasks on board.
  alignas(kCacheLineSize) std::atomic<std::uint64_t> heartbeat_ms{0};
  // The id of the task whose handler is running (0: none). Stored before the handler is called
  // and cleared after its answer is written, so when the worker dies the supervisor knows which
  // task on board it was running: that one spends an attempt, the others never started.
  std::atomic<std::uint64_t> current_task_id{0};
  // Cache line 1 — written by the supervisor only; read by the worker.
  // The task the supervisor asks the worker to abandon while it runs (0: none). A running
  // handler polls it through Task::cancelled(); the supervisor kills the worker after a grace
  // period if the handler does not return.
  alignas(kCacheLineSize) std::atomic<std::uint64_t> cancel_task_id{0};
};

static_assert(sizeof(WorkerControl) == 2 * kCacheLineSize, "WorkerControl is segment layout");
static_assert(offsetof(WorkerControl, cancel_task_id) == kCacheLineSize,
              "worker- and supervisor-written fields must not share a cache line");

}  // namespace procpool
