#pragma once

#include <sys/epoll.h>  // epoll_event

#include <atomic>              // pollers
#include <condition_variable>  // state changes
#include <cstdint>             // ids
#include <deque>               // in-flight lists
#include <memory>              // std::enable_shared_from_this
#include <mutex>               // std::mutex
#include <optional>            // errors
#include <random>              // jitter
#include <string>              // payloads
#include <thread>              // the supervisor thread
#include <unordered_map>       // handler names
#include <vector>              // slots, tasks

#include "adaptive_depth.hpp"
#include "handler_registry.hpp"
#include "latency_histogram.hpp"
#include "output_capture.hpp"
#include "process_status.hpp"
#include "procpool/future.hpp"
#include "procpool/pool.hpp"
#include "procpool/region_list.hpp"
#include "procpool/shared_region.hpp"
#include "procpool/unique_fd.hpp"
#include "procpool/wire_format.hpp"
#include "task_queue.hpp"
#include "task_table.hpp"
#include "worker_slot.hpp"

namespace procpool::detail {

// The engine behind procpool::Pool.
//
// Threads: one supervisor thread (run_loop) spawns, watches (epoll over pidfds, stderr pipes and
// each worker's doorbell eventfd), reaps and restarts workers; it is the only thread that spawns
// (PDEATHSIG follows the spawning thread, docs/design-rules.md §11). Submitting threads dispatch
// directly into workers' rings, and threads waiting in get()/wait_idle() drain result rings
// themselves while they spin, so a lone round trip never needs a thread wake-up. All of it under
// one process-local mutex (never shared with a worker): every task and slot field is guarded by
// mu_. Completion callbacks run outside mu_.
class PoolCore final : public std::enable_shared_from_this<PoolCore>, public FutureWaiter {
 public:
  // PoolOptions::pipeline_depth: the largest fixed depth, and the adaptive depth's bounds.
  static constexpr unsigned kMaxPipelineDepth = 65536;
  static constexpr std::chrono::nanoseconds kPipelineWork = AdaptiveDepth::kPipelineWork;
  // Waiting threads spin on the result rings only while some busy worker answers faster than
  // this on average (or is not measured yet): with longer tasks a spin only takes a CPU from
  // the workers (C1 on 2 cores), and sleeping costs one wake-up per answer.
  static constexpr std::chrono::microseconds kSpinWorthy{25};
  static constexpr std::chrono::nanoseconds kLongTask = AdaptiveDepth::kLongTask;
  // See charged_task_locked.
  static constexpr std::uint32_t kMaxUnchargedDeaths = 3;
  // The supervisor thread's nap while callers drive (see caller_turns_): a caller that stops
  // (a submitter waiting on its own for callbacks) has its results drained after about this.
  static constexpr std::chrono::microseconds kCallerNap{50};
  // With memory limits, a worker's memory is also looked at this soon after a task it answered
  // (besides every heartbeat_interval): the check reads /proc, so not after every task.
  static constexpr std::chrono::milliseconds kMemoryCheckAfterTask{10};

  explicit PoolCore(PoolOptions options);
  ~PoolCore();
  PoolCore(const PoolCore&) = delete;
  PoolCore& operator=(const PoolCore&) = delete;

  // Starts the supervisor thread and waits until min_workers are READY. Throws Error.
  void start();

  Future<std::string> submit_future(std::string_view handler, std::string_view payload,
                                    const TaskOptions& options);
  // FutureWaiter (delivery.cpp): a thread waiting for one future spins on the result rings
  // first (draining them itself), then sleeps until the task is resolved or the deadline.
  bool await(FutureSignal& signal,
             std::optional<std::chrono::steady_clock::time_point> deadline) override;
  // await() on the pool's own thread (a callback there waiting for a future): nobody else
  // drains the rings, so it drives them itself, sleeping at most 1 ms at a time on the signal.
  bool drive_until(FutureSignal& signal,
                   std::optional<std::chrono::steady_clock::time_point> deadline);
  void submit(std::string_view handler, std::string_view payload, const TaskOptions& options,
              Completion completion);
  void submit_batch(std::string_view handler, std::span<const std::string_view> payloads,
                    const TaskOptions& options, BatchCallback& batch);
  void submit_chunked(std::string_view handler, std::span<const std::string_view> payloads,
                      std::size_t chunk_size, const TaskOptions& options,
                      std::shared_ptr<ItemCallback> on_item);
  void cancel(std::uint64_t task_id);
  void wait_idle();
  void shutdown();
  void terminate();
  void join_supervisor(std::unique_lock<std::mutex>& lock);
  PoolMetrics metrics() const;
  std::vector<std::string> handlers() const;
  std::span<std::byte> shared_memory() const noexcept { return shared_.bytes(); }
  // The named region `name` (PoolOptions::regions); throws procpool::Error if there is none.
  std::span<std::byte> region(std::string_view name) const;

 private:
  // A resolution to deliver once mu_ is released.
  struct Delivery {
    Completion completion;
    std::string value;
    std::optional<TaskError> error;
    int pid = 0;  // the worker that answered
    // A carrier's (coalescing.cpp): the value is its chunk answer, fanned out to these, in order.
    std::vector<Completion> members{};
    // A task with on_progress: run its mailbox (progress_stream.hpp), which holds the event.
    std::shared_ptr<ProgressStream> stream{};
  };

  // Every *_locked member is called with mu_ held. The members are defined by concept, one
  // file each (the comment before each group names it); they share the state below.

  // admission.cpp: refuse a task at submission (shutting down, unknown handler, too large,
  // queue full), or wait for queue room.
  bool admit_locked(std::unique_lock<std::mutex>& lock, std::string_view handler,
                    std::string_view payload, const TaskOptions& options, Completion& completion,
                    std::uint32_t& handler_id);
  // submission.cpp: the public submit calls, and a task's record from creation to free.
  // `now`: its submission time (a batch reads the clock once per run of tasks).
  std::uint32_t new_task_locked(std::uint32_t handler_id, const TaskOptions& options,
                                Completion completion, Clock::time_point now);
  // Creates the task and dispatches or queues it; returns its record index.
  std::uint32_t submit_locked(std::uint32_t handler_id, std::string_view payload,
                              const TaskOptions& options, Completion completion,
                              Clock::time_point now);
  void free_task_locked(std::uint32_t index);
  // dispatcher.cpp: least-loaded ready worker with room in its pipeline; writing tasks and
  // control frames into its ring.
  // `coalescing`: for a coalescable task (at most kCoalescedFrames frames per worker).
  WorkerSlot* pick_slot_locked(Clock::time_point now, bool coalescing = false);
  bool running_long_locked(const WorkerSlot& slot, Clock::time_point now) const noexcept;
  // The position in slot.load.inflight (not empty) of the task the worker serves next.
  std::size_t next_served_locked(const WorkerSlot& slot) const noexcept;
  void start_dispatch_locked(WorkerSlot& slot, std::uint32_t index, Clock::time_point now);
  // `now`: a clock reading the caller already has.
  void dispatch_locked(Clock::time_point now);
  void dispatch_locked() {
    if (!queue_.empty()) dispatch_locked(Clock::now());
  }
  // Writes (more of) the slot's writing_task(), from `source` or else the task's stored
  // payload; true when the whole task is in the ring.
  bool write_task_locked(WorkerSlot& slot, const std::string_view* source = nullptr);
  void publish_all_locked();
  // coalescing.cpp: plain tasks queued behind `head` packed into one frame (a carrier record,
  // sent as a chunk) for `slot`; returns the record to dispatch (`head` itself if alone).
  std::uint32_t coalesce_locked(const WorkerSlot& slot, std::uint32_t head, Clock::time_point now);
  // A carrier taken apart: each member back in a record of its own, alone from now on, at the
  // front of the queue in its place (a worker died under it, or it was answered as a whole with
  // an error that is none of its members'). `died`: counted as retried.
  void requeue_members_locked(std::uint32_t carrier, bool died);
  void send_frame_locked(WorkerSlot& slot, FrameType type, std::uint64_t task_id);

  // result_handler.cpp: draining the result rings, checking and completing answers.
  void drain_all_locked();
  // `may_hold`: false when the worker has exited, so that everything it published counts
  // whatever progress backlog there is.
  void drain_slot_locked(WorkerSlot& slot, bool may_hold = true);
  void on_frame_locked(WorkerSlot& slot, const WorkerChannel::Frame& frame);
  // Where task `task_id` is in the worker's in-flight list; end() if the worker does not hold it
  // (a stale or made-up id: the caller kills the worker).
  std::deque<std::uint32_t>::iterator find_on_board(WorkerSlot& slot, std::uint64_t task_id);
  void progress_locked(WorkerSlot& slot, std::uint64_t task_id, std::string data);
  // The worker's ring is not to be read now: a progress mailbox over its bound
  // (WorkerLoad::held_by) that this thread is not running.
  static bool ring_held(const WorkerSlot& slot);
  // `body`: the answer's payload, the channel's copy (delivered as the result).
  // `flags`: the answer's frame flags (kFrameChunk, kFrameErrorDetail).
  void complete_locked(WorkerSlot& slot, std::uint64_t task_id, bool ok, std::uint16_t flags,
                       std::string body);
  void adapt_depth_locked(WorkerSlot& slot, const TaskRecord& task, Clock::time_point now);
  bool answers_soon_locked() const noexcept;
  // delivery.cpp: resolutions queued under mu_ and run outside it; threads waiting for them.
  void resolve_locked(std::uint32_t index, std::string value, std::optional<TaskError> error,
                      int pid = 0, std::uint32_t item_failures = 0);
  void deliver(std::unique_lock<std::mutex>& lock);  // runs deliveries_ with mu_ released
  // task_deadlines.cpp: cancellation, timeouts and cancel grace of the tasks on board.
  void cancel_locked(std::uint64_t task_id);
  void scan_deadlines_locked(WorkerSlot& slot, Clock::time_point now);

  // supervisor_loop.cpp: the supervisor thread.
  void run_loop();
  static constexpr int kMaxEvents = 64;
  // Sleeps kCallerNap in epoll without announcing on any ring (the callers drain them), so an
  // exit, a kick or output still wakes it; reads the output of what came. Returns the count.
  int nap(epoll_event* events);
  void read_event_outputs(const epoll_event* events, int count);  // without mu_
  void handle_events_locked(const epoll_event* events, int count);
  // A thread in the pool's API that works the rings under mu_ (submit, get, wait_idle) counts
  // a turn; see caller_turns_.
  void caller_turn_locked() noexcept {
    caller_turns_.store(caller_turns_.load(std::memory_order_relaxed) + 1,
                        std::memory_order_relaxed);
  }
  // worker_spawn.cpp
  void spawn_locked(WorkerSlot& slot);
  // `code`: the errno of the failed system call, 0 if none applies.
  void spawn_failed_locked(WorkerSlot& slot, const char* reason, int code);
  void undo_spawn_locked(WorkerSlot& slot, ChildProcess& child);
  // worker_output.cpp: the workers' stdout and stderr (PoolOptions::worker_stdout,
  // worker_stderr). Supervisor thread only, and never with mu_ held: these run the sinks.
  void read_outputs(WorkerSlot& slot);
  void close_outputs();
  // With mu_ held, at the reap: the captures leave the epoll set and the slot, for
  // close_outputs() to finish (what is still in the pipes reaches the sinks) once mu_ is free.
  void retire_outputs_locked(WorkerSlot& slot);
  // worker_health.cpp: killing a worker, and what it is watched for (doorbell, memory).
  void kill_locked(WorkerSlot& slot, std::string reason, KillCause cause);
  // For breaking the protocol (KillCause::kProtocolViolation): nothing it wrote is trusted.
  void kill_locked(WorkerSlot& slot, std::string reason, ProtocolViolation violation);
  void doorbell_locked(WorkerSlot& slot);
  void check_memory_locked(WorkerSlot& slot);
  bool memory_watched() const noexcept {
    return options_.max_rss != 0 || options_.max_rss_hard != 0;
  }
  // worker_exit.cpp: reaping, the crash report, the tasks on board, the restart.
  void reap(WorkerSlot& slot);
  // `last_words`: the tail of its stderr (for the crash report).
  void on_exit_locked(WorkerSlot& slot, const ExitStatus& exit, const std::string& last_words);
  void schedule_restart_locked(WorkerSlot& slot, DeathKind death, const std::string& what,
                               Clock::time_point now);
  // charged_task.cpp
  const TaskRecord* charged_task_locked(const WorkerSlot& slot) const;
  // worker_timers.cpp: each slot's deadlines, as transitions of its state machine.
  Clock::time_point timers_locked(Clock::time_point now);
  // The timer of each slot state: runs the transition that is due, returns when it next is.
  Clock::time_point backoff_timer_locked(WorkerSlot& slot, Clock::time_point now);
  Clock::time_point starting_timer_locked(WorkerSlot& slot, Clock::time_point now);
  Clock::time_point stopping_timer_locked(WorkerSlot& slot, Clock::time_point now);
  Clock::time_point serving_timer_locked(WorkerSlot& slot, Clock::time_point now);
  bool heartbeat_ok_locked(WorkerSlot& slot, Clock::time_point now);
  void stop_slot_locked(WorkerSlot& slot, Clock::time_point now);
  // recycling.cpp: a worker due for recycling serves until a replacement started for it in a
  // free slot is READY, then drains (docs/pool.md, "Recycling").
  enum class Recycle { kQuotaReached, kAboveMaxRss };
  void recycle_locked(WorkerSlot& slot, Recycle why);
  void advance_recycles_locked();
  // Its replacement is starting or serving: the slot no longer counts towards the pool's size.
  bool replaced_locked(const WorkerSlot& slot) const noexcept;
  // autoscaler.cpp
  Clock::time_point autoscale_locked(Clock::time_point now);
  bool backlogged_locked(const WorkerSlot& slot, Clock::time_point now) const noexcept;
  // pool_events.cpp: life-cycle events (PoolOptions::on_event): queued under mu_, run by the
  // supervisor thread with mu_ released, in order.
  void emit_locked(const WorkerSlot& slot, PoolEvent event);
  void flush_events(std::unique_lock<std::mutex>& lock);

  // pool_core.cpp: construction, stopping, and what every part asks of the whole.
  void fail_pool_locked(std::string message);
  void kick() const noexcept;
  // A deadline set by a thread other than the supervisor's (a task's timeout, from a dispatch
  // or an answer in get()): kicks the supervisor thread if it sleeps past it.
  void wake_for_locked(Clock::time_point deadline) noexcept;
  std::size_t live_slots_locked() const;
  std::string handler_name_locked(std::uint32_t handler) const;
  std::string describe_slot(const WorkerSlot& slot) const;

  const PoolOptions options_;
  const unsigned min_workers_;
  const unsigned max_workers_;
  SharedRegion shared_;   // PoolOptions::shared_memory_size; empty if 0
  NamedRegions regions_;  // PoolOptions::regions
  // PoolOptions::worker_stdout and worker_stderr, shared by every worker's capture.
  std::shared_ptr<SinkSet> stdout_sinks_;
  std::shared_ptr<SinkSet> stderr_sinks_;

  mutable std::mutex mu_;
  std::condition_variable changed_;  // READY, idle, queue room, stopped, failed

  TaskTable tasks_{1024};
  TaskQueue queue_;
  std::vector<WorkerSlot> slots_;
  std::vector<Delivery> deliveries_;
  // Emptied batches kept for reuse: deliver() swaps deliveries_ with one, so that threads
  // delivering at the same time each own their batch and nothing is allocated once warm.
  std::vector<std::vector<Delivery>> spare_batches_;
  std::size_t in_delivery_ = 0;  // resolutions taken by deliver() and not yet run

  HandlerRegistry handlers_;
  std::uint64_t next_incarnation_ = 0;
  std::size_t running_ = 0;
  std::uint64_t completed_ = 0, failed_ = 0, retried_ = 0, restarts_ = 0;
  std::uint64_t coalesced_ = 0;  // tasks sent packed in a frame with others
  LatencyHistogram queue_wait_, run_time_;
  Clock::time_point last_spawn_{};
  // When the supervisor thread next wakes on its own (its epoll timeout), min() while it is
  // awake; and the earliest deadline other threads set since it last looked (wake_for_locked).
  Clock::time_point planned_wake_ = Clock::time_point::min();
  Clock::time_point external_deadline_ = Clock::time_point::max();
  Clock::time_point last_dispatch_{};  // timers_locked's hang-bound wake-ups stop after that
  std::mt19937_64 rng_{std::random_device{}()};

  bool accepting_ = true;
  bool stopping_ = false;     // shutdown asked: drain, then stop the workers
  bool terminating_ = false;  // terminate(): workers killed, tasks on board fail ShuttingDown
  bool started_ = false;      // start() created the supervisor thread
  std::once_flag joined_;     // the supervisor thread is joined once, whoever stops the pool
  Clock::time_point shutdown_deadline_{};
  bool stopped_ = false;                // the supervisor thread is done
  std::optional<std::string> failure_;  // the failed state's message
  bool started_up_ = false;             // start() returned: crash loops no longer fail the pool
  std::vector<PoolEvent> events_;       // to run (flush_events)
  std::vector<PoolEvent> events_out_;   // being run

  // Threads spinning on result rings (in get()/wait_idle()). While any does, the supervisor
  // thread does not ask workers to ring the doorbell, so results are not announced twice.
  std::atomic<int> pollers_{0};
  // Turns callers took (caller_turn_locked; written under mu_, read without it). While they
  // keep taking them, results are drained by the callers themselves, and the supervisor thread
  // steps aside: it naps (kCallerNap) instead of spinning and taking mu_, which with more
  // runnable threads than CPUs took a CPU from the caller and, preempted while holding mu_,
  // put the caller to sleep on it (docs/pool.md, "Waiting").
  std::atomic<std::uint32_t> caller_turns_{0};

  std::vector<EventCount*> announced_;  // the supervisor thread's, reused per sleep
  // Reaped workers' output captures, finished by the supervisor thread outside mu_.
  std::vector<std::unique_ptr<OutputCapture>> closing_outputs_;
  UniqueFd epoll_fd_;
  UniqueFd kick_fd_;  // written by other threads to wake the supervisor thread
  std::thread thread_;

  // --- host_safety.cpp. Callers and hosts: callbacks that throw or stop the pool, fork(), the
  // last reference (docs/pool.md, "Callbacks, fork() and signals"). ---
 public:
  // The deleter of the shared_ptr owning a PoolCore (Pool::Pool). Never destroys it on its own
  // supervisor thread or inside one of its callbacks, whose frames still use it: a helper thread
  // does it then. In a fork()ed child it does nothing: the threads the core would join do not
  // exist there, and everything else it owns is the parent's.
  static void destroy(PoolCore* core) noexcept;
  // True in a child fork()ed after the pool was created (a pthread_atfork count, so cheap).
  bool forked() const noexcept;
  // Throws Error naming the owning process if forked().
  void check_owner() const;
  // Whether this thread is inside one of this pool's completion callbacks now.
  bool in_callback() const noexcept;
  std::uint64_t callback_errors() const;

 private:
  static std::uint64_t fork_generation() noexcept;
  static int current_pid() noexcept;
  bool on_supervisor_thread() const noexcept;

  const std::uint64_t born_generation_ = fork_generation();
  const int owner_pid_ = current_pid();
  std::uint64_t callback_errors_ = 0;  // guarded by mu_
  // Threads inside deliver()'s callbacks or wait_idle(): the destructor waits for them to
  // leave (a callback may drop the last reference while its frame still runs). Guarded by mu_.
  std::size_t callers_inside_ = 0;
};

}  // namespace procpool::detail
