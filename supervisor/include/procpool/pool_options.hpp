#pragma once
#include "procpool/detail/require_cxx20.hpp"

#include <chrono>      // durations
#include <cstdint>     // std::uint64_t
#include <functional>  // PoolOptions::on_event
#include <memory>      // std::shared_ptr
#include <string>      // std::string
#include <utility>     // std::pair
#include <vector>      // std::vector

#include "procpool/output_sink.hpp"
#include "procpool/pool_event.hpp"
#include "procpool/restart_policy.hpp"
#include "procpool/task_progress.hpp"

namespace procpool {

enum class Priority : std::uint8_t { High = 0, Normal = 1, Low = 2 };

class CancelSource;

// Per-task options. Defaults come from the pool.
struct TaskOptions {
  Priority priority = Priority::Normal;
  // Counted from the task's start (when it reaches the head of its worker's pipeline), never
  // while it waits; 0 = no timeout. On expiry the worker running the task is killed and
  // replaced, and the task fails with Timeout (or is retried while attempts remain).
  std::chrono::milliseconds timeout{0};
  // Dispatches allowed when workers crash under the task; 0 = PoolOptions::max_attempts.
  unsigned max_attempts = 0;
  // When the queue is at max_queue: false = fail with QueueFull at once; true = block the
  // submitting thread until there is room (backpressure).
  bool wait_if_full = false;
  // Cancels the task when its source is cancelled (Node's AbortSignal).
  std::shared_ptr<CancelSource> cancel;
  // Receives what the handler sends with Task::emit, in order and before the outcome
  // (procpool/task_progress.hpp). For Pool::submit and submit_batch (TaskProgress::index says
  // which payload); submit_chunked refuses it. Empty (the default): the worker's emit does
  // nothing.
  ProgressCallback on_progress;
};

// A named shared region (docs/dataplane.md, "Named shared regions"): `size` bytes, zero-filled,
// that the host (Pool::region) and every worker (Worker::region) open by `name`.
struct RegionSpec {
  std::string name;        // 1..64 bytes of letters, digits, '_', '-', '.'; unique in the pool
  std::uint64_t size = 0;  // bytes, > 0; fixed for the region's life
};

struct PoolOptions {
  std::string executable;                                // the worker program (required)
  std::vector<std::string> args;                         // its argv[1..]
  std::vector<std::pair<std::string, std::string>> env;  // added to the supervisor's environment
  std::string worker_data;                               // Worker::data() in every worker

  unsigned min_workers = 0;  // 0 = number of CPUs
  unsigned max_workers = 0;  // 0 = min_workers

  // Tasks waiting for a worker; 0 = unbounded (Piscina's default).
  std::size_t max_queue = 0;
  // Tasks in flight on one worker at once (pipelined in its ring). 0 = adaptive: from each
  // worker's measured time per task, the one it runs plus about 1 ms of work queued behind it
  // (2 until measured, at most 1024): deep for tiny tasks, one or two for long ones.
  unsigned pipeline_depth = 0;
  // Dispatches per task when workers crash under it (1 = no retry).
  unsigned max_attempts = 1;
  // Largest payload and result, bytes.
  std::uint64_t max_payload = 64ULL * 1024 * 1024;

  // A worker above min_workers idle this long is stopped.
  std::chrono::milliseconds idle_timeout{10000};
  // At most one new worker per this interval when scaling up.
  std::chrono::milliseconds spawn_interval{50};
  // Recycle a worker after this many tasks (0 = never), with up to +10% jitter so a pool does not
  // recycle all its workers at once. Its replacement starts as it takes its last task.
  std::uint64_t max_tasks_per_worker = 0;

  // Memory per worker, resident set size in bytes (0 = no limit), sampled every
  // heartbeat_interval from /proc. Above max_rss the worker is recycled: it serves until its
  // replacement is READY, then takes no new tasks, finishes those on board and exits. Above
  // max_rss_hard it is killed at once and the task it was running fails MemoryLimit (or is
  // retried); its process also gets RLIMIT_DATA = max_rss_hard, so a runaway allocation fails
  // inside the worker (std::bad_alloc: the task fails MemoryLimit and the worker is recycled)
  // before it can take the machine down. RLIMIT_DATA counts private writable address space, not
  // residency: leave room for thread stacks and allocator arenas, and do not use max_rss_hard with
  // AddressSanitizer-built workers (its shadow is counted).
  std::uint64_t max_rss = 0;
  std::uint64_t max_rss_hard = 0;

  // A started worker must be READY within this.
  std::chrono::milliseconds startup_timeout{10000};
  // Worker heartbeat; a worker whose heartbeat is older than heartbeat_misses intervals is hung.
  std::chrono::milliseconds heartbeat_interval{100};
  unsigned heartbeat_misses = 5;
  // A cancelled task still running this long after its cancellation gets its worker killed.
  std::chrono::milliseconds cancel_grace{1000};
  // shutdown(): in-flight and queued tasks get this long to finish; workers then get
  // stop_grace to exit after the shutdown frame before SIGKILL.
  std::chrono::milliseconds shutdown_grace{30000};
  std::chrono::milliseconds stop_grace{5000};

  RestartPolicy restart;

  // Bytes of each worker->supervisor and supervisor->worker ring (a power of two). A payload up
  // to half of it travels as one frame, read in place by the worker; larger ones in fragments.
  // Shared memory is committed as the rings are used: up to 2 x this per worker.
  std::uint64_t ring_capacity = 4 * 1024 * 1024;
  // Bytes of memory shared by the supervisor and every worker, across restarts (0 = none):
  // Pool::shared_memory() and Worker::shared_memory(), zero-filled at start. Tasks then pass
  // offsets into it instead of copying large payloads (see docs/pool.md, "Shared memory").
  std::uint64_t shared_memory_size = 0;
  // Named shared regions (at most 64), created with the pool and kept across worker restarts:
  // like shared_memory_size, one sealed memfd each, opened by name instead of by offset.
  std::vector<RegionSpec> regions;
  // Where each worker's stdout and stderr go (the same sinks as a Supervisor program's: an fd,
  // a line callback, a rotating file; OutputSink::none() drops the stream). The supervisor
  // thread reads them and runs the sinks outside the pool's lock; a full pipe or terminal on
  // the fd drops bytes rather than stall the pool. The last stderr lines go into crash reports
  // either way. A line callback gets "worker:<slot>" as the instance name.
  OutputSink worker_stdout = OutputSink::to_fd(1);
  OutputSink worker_stderr = OutputSink::to_fd(2);

  // Called for every worker life-cycle event (started, ready, exited, restarting, spawn failed,
  // crash loop), on the pool's supervisor thread, outside the pool's lock, in order. Keep it
  // short; what it throws is caught, reported on stderr and counted in
  // PoolMetrics::callback_errors. As in a completion callback, shutdown() and terminate() return
  // at once (the stop completes after it returns) and wait_idle() throws.
  std::function<void(const PoolEvent&)> on_event;
};

}  // namespace procpool
