#pragma once
#include "procpool/detail/require_cxx20.hpp"

// procpool::Pool — a pool of worker processes running named handlers on byte payloads.
//
//   procpool::PoolOptions options;
//   options.executable = "/path/to/worker";
//   procpool::Pool pool(options);                  // spawns min_workers, waits until READY
//   procpool::Future<std::string> r = pool.submit("fib", "30");
//   pool.submit("fib", "31", {}, [](const procpool::TaskOutcome& o) { ... });  // fast path
//   pool.shutdown();                               // the destructor does the same
//
// Threads: every member function is thread-safe. Completion callbacks run on whichever pool
// thread resolves the task (the pool's supervisor thread, or a thread waiting in get() or
// wait_idle()); keep them short; they may submit more tasks.
//
// Callbacks, fork() and signals (docs/pool.md has the details):
//   - A callback that throws does not reach the thread that happened to run it: the exception
//     is caught, reported on stderr (the task's worker pid included) and counted in
//     PoolMetrics::callback_errors, and the other callbacks still run.
//   - From a callback, shutdown() and terminate() start the stop and return at once (waiting
//     there would wait for the callback itself); the stop completes once the callback returns.
//     wait_idle() throws procpool::Error. Destroying the Pool (or dropping the last future)
//     inside a callback starts the shutdown too; a helper thread finishes it in the background.
//   - A child fork()ed after the Pool was created gets an inert copy: every member function
//     throws procpool::Error ("this pool belongs to process N"), so do get() and cancel() of
//     what was submitted before, shared_memory() is empty, and the destructor returns at once
//     without touching the parent's workers, rings or threads. Create a new Pool in the child.
//   - Forwarding worker stderr never raises SIGPIPE in the host (a closed stderr gets EPIPE).
//   - procpool/shutdown_signals.hpp turns SIGTERM/SIGINT into shutdown(), a second into
//     terminate().

#include <cstddef>      // std::byte
#include <memory>       // std::shared_ptr
#include <span>         // std::span
#include <string>       // std::string
#include <string_view>  // std::string_view
#include <vector>       // std::vector

#include "procpool/cancel_source.hpp"
#include "procpool/future.hpp"
#include "procpool/metrics.hpp"
#include "procpool/pool_options.hpp"
#include "procpool/task_error.hpp"
#include "procpool/task_outcome.hpp"

namespace procpool {

class Pool {
 public:
  // Starts min_workers workers and waits until each is READY. Throws procpool::Error with a
  // clear message on bad options, a missing or non-executable worker, or a worker that never
  // became READY (its exit status and last stderr lines included).
  explicit Pool(PoolOptions options);
  // shutdown(), then stops the supervisor thread. Inside one of the pool's callbacks it only
  // starts the shutdown (see above); in a fork()ed child it does nothing.
  ~Pool();
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  // Runs `handler` on `payload` in some worker. The future's get() throws TaskError on failure.
  // Its waits (get, wait, wait_for, wait_until) spin briefly on the worker's result ring before
  // they sleep (procpool/future.hpp); wait_for()/wait_until() report ready or timeout as
  // std::future's do.
  Future<std::string> submit(std::string_view handler, std::string_view payload,
                             const TaskOptions& options = {});

  // The fast path: `on_done(const TaskOutcome&)` is called once with the result or the error.
  // No heap allocation per task (for callables up to 48 bytes) once the pool is warm.
  template <class F>
  void submit(std::string_view handler, std::string_view payload, const TaskOptions& options,
              F&& on_done) {
    submit_completion(handler, payload, options, detail::Completion(std::forward<F>(on_done)));
  }

  // Submits payloads.size() tasks under one lock; `on_done(std::size_t index, const
  // TaskOutcome&)` is called once per task. The payload bytes are copied before it returns.
  template <class F>
  void submit_batch(std::string_view handler, std::span<const std::string_view> payloads,
                    const TaskOptions& options, F&& on_done) {
    auto* batch = new detail::BatchCallbackOf<std::decay_t<F>>(std::forward<F>(on_done));
    struct Release {  // the submitter's reference: the tasks hold their own
      detail::BatchCallback* batch;
      ~Release() { batch->release(); }
    } release{batch};
    submit_batch_erased(handler, payloads, options, *batch);
  }

  // The fastest way to run many small tasks (Python's Pool.map chunksize): the payloads travel
  // in chunks of up to `chunk_size` items (0 = about 4 chunks per worker, as Python chooses),
  // each chunk one message to one worker, whose handler runs once per item; `on_done(index,
  // outcome)` is called once per payload, in order within a chunk. A chunk is one task to the
  // pool: it is dispatched, timed out (TaskOptions::timeout covers the whole chunk), cancelled
  // and retried after a worker crash as a whole, so an item may run more than once in a worker
  // but its outcome is delivered exactly once. Chunks are also cut so that their encoded size
  // stays within max_payload; a payload larger than that alone fails with PayloadTooLarge. Each
  // item's error carries its own kind and message; a chunk-level failure (crash, timeout,
  // cancel, unknown handler, results above max_payload) is reported for every item in it.
  // Callbacks for different chunks may run at the same time on different threads.
  template <class F>
  void submit_chunked(std::string_view handler, std::span<const std::string_view> payloads,
                      std::size_t chunk_size, const TaskOptions& options, F&& on_done) {
    submit_chunked_erased(handler, payloads, chunk_size, options,
                          std::make_shared<detail::ItemCallback>(std::forward<F>(on_done)));
  }

  // Blocks until no task is queued or running (helps resolve results meanwhile). Throws
  // procpool::Error when called from one of this pool's callbacks (it would wait for itself).
  void wait_idle();

  // Stops taking tasks (new ones fail with ShuttingDown), lets queued and running tasks finish
  // within shutdown_grace, stops the workers (SIGTERM-equivalent shutdown frame, SIGKILL after
  // stop_grace) and reaps them. Idempotent. From one of the pool's callbacks it starts all this
  // and returns at once; a later shutdown() elsewhere waits for the end.
  void shutdown();

  // Stops at once: new tasks fail ShuttingDown, queued ones fail ShuttingDown without running,
  // every worker is SIGKILLed (with its process group) and the tasks on board fail ShuttingDown
  // naming the worker; returns once the workers are reaped. Cuts short a shutdown() running on
  // another thread (which then returns too). Idempotent; the destructor's shutdown() is then a
  // no-op. For a second Ctrl-C, or a deadline the graceful stop overran. From one of the pool's
  // callbacks it kills and returns without waiting for the reaping.
  void terminate();

  PoolMetrics metrics() const;
  // The memory shared with every worker (PoolOptions::shared_memory_size bytes; empty if 0),
  // valid as long as the Pool. Workers may write it at any time: treat what they wrote as
  // untrusted. See SharedRegion.
  std::span<std::byte> shared_memory() const noexcept;
  // The named region `name` (PoolOptions::regions), valid as long as the Pool; throws
  // procpool::Error if the pool has none of that name. Workers may write it at any time, like
  // shared_memory(); procpool/shared_array.hpp gives typed atomic access.
  std::span<std::byte> region(std::string_view name) const;
  // The handler names the workers announced.
  std::vector<std::string> handlers() const;

 private:
  void submit_completion(std::string_view handler, std::string_view payload,
                         const TaskOptions& options, detail::Completion completion);
  void submit_batch_erased(std::string_view handler, std::span<const std::string_view> payloads,
                           const TaskOptions& options, detail::BatchCallback& batch);
  void submit_chunked_erased(std::string_view handler, std::span<const std::string_view> payloads,
                             std::size_t chunk_size, const TaskOptions& options,
                             std::shared_ptr<detail::ItemCallback> on_item);

  std::shared_ptr<detail::PoolCore> core_;
};

}  // namespace procpool
