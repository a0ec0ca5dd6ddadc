#include "pool_core.hpp"

#include <fcntl.h>        // pipe2, O_CLOEXEC
#include <poll.h>         // poll (forwarding stderr)
#include <pthread.h>      // pthread_atfork, pthread_sigmask
#include <signal.h>       // SIGKILL
#include <sys/epoll.h>    // epoll
#include <sys/eventfd.h>  // eventfd
#include <sys/syscall.h>  // SYS_pidfd_send_signal
#include <sys/wait.h>     // waitpid
#include <unistd.h>       // read, getpid

#include <algorithm>  // std::min
#include <cerrno>     // errno
#include <chrono>     // durations
#include <cstdio>     // std::snprintf
#include <cstring>    // std::memcpy
#include <limits>     // std::numeric_limits

#include "adaptive_depth.hpp"
#include "process_status.hpp"
#include "procpool/chunk_format.hpp"
#include "procpool/detail/launcher.hpp"
#include "procpool/wait_strategy.hpp"
#include "procpool/wire_format.hpp"
#include "procpool/worker_environment.hpp"
#include "restart_tracker.hpp"

namespace procpool::detail {
namespace {

using std::chrono::milliseconds;
using State = WorkerSlot::State;

constexpr std::uint64_t kEpollDoorbell = 1ULL << 40;
constexpr std::uint64_t kEpollKick = 2ULL << 40;
constexpr std::uint64_t kEpollPidfd = 3ULL << 40;
constexpr std::uint64_t kEpollStderr = 4ULL << 40;
constexpr std::uint64_t kEpollKindMask = 0xFFULL << 40;

double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}
double micros_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::micro>(b - a).count();
}
double unix_now_s() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// The pool's error kind for a worker's error code (codes are validated before this).
TaskError::Kind kind_of(WorkerErrorCode code) noexcept {
  switch (code) {
    case WorkerErrorCode::kUnknownHandler:
      return TaskError::Kind::UnknownHandler;
    case WorkerErrorCode::kCancelled:
      return TaskError::Kind::Cancelled;
    case WorkerErrorCode::kPayloadTooLarge:
      return TaskError::Kind::PayloadTooLarge;
    case WorkerErrorCode::kMemoryLimit:
      return TaskError::Kind::MemoryLimit;
    case WorkerErrorCode::kHandlerFailed:
      break;
  }
  return TaskError::Kind::HandlerError;
}

std::string milliseconds_text(milliseconds ms) { return std::to_string(ms.count()) + " ms"; }

std::string mebibytes_text(std::uint64_t bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f MiB", static_cast<double>(bytes) / (1024.0 * 1024.0));
  return text;
}

unsigned default_min_workers(const PoolOptions& o) {
  if (o.min_workers != 0) return o.min_workers;
  const unsigned cpus = std::thread::hardware_concurrency();
  return cpus == 0 ? 1 : cpus;
}

// Rejects options a pool cannot run with, each with a message saying which and why.
void validate(const PoolOptions& o, unsigned min_workers, unsigned max_workers) {
  auto bad = [](const std::string& what) { throw Error("procpool::Pool: " + what); };
  if (o.executable.empty()) bad("options.executable is empty");
  if (max_workers < min_workers) {
    bad("max_workers (" + std::to_string(max_workers) + ") is below min_workers (" +
        std::to_string(min_workers) + ")");
  }
  if (max_workers > 1024) bad("max_workers above 1024");
  if (o.max_rss != 0 && o.max_rss_hard != 0 && o.max_rss > o.max_rss_hard) {
    bad("max_rss (" + std::to_string(o.max_rss) + ") is above max_rss_hard (" +
        std::to_string(o.max_rss_hard) + ")");
  }
  if (o.pipeline_depth > PoolCore::kMaxPipelineDepth) {
    bad("pipeline_depth above " + std::to_string(PoolCore::kMaxPipelineDepth));
  }
  if (o.max_attempts == 0) bad("max_attempts must be at least 1");
  if (o.max_payload == 0) bad("max_payload must be at least 1 byte");
  if (!is_valid_ring_capacity(o.ring_capacity) || o.ring_capacity < 4096) {
    bad("ring_capacity must be a power of two, at least 4096");
  }
  const std::uint64_t init_room = ring_max_payload(o.ring_capacity) - sizeof(FrameHeader) - 8;
  if (o.worker_data.size() > init_room) {
    bad("worker_data of " + std::to_string(o.worker_data.size()) + " bytes exceeds " +
        std::to_string(init_room) + " (raise ring_capacity)");
  }
  if (o.heartbeat_interval.count() < 1) bad("heartbeat_interval must be at least 1 ms");
  if (o.heartbeat_misses < 2) bad("heartbeat_misses must be at least 2");
  if (o.startup_timeout.count() < 1) bad("startup_timeout must be at least 1 ms");
  if (o.restart.initial_backoff.count() < 0 || o.restart.max_backoff < o.restart.initial_backoff) {
    bad("restart backoff: need 0 <= initial_backoff <= max_backoff");
  }
}

UniqueFd make_eventfd() {
  UniqueFd fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!fd) throw_errno(errno, "procpool::Pool: eventfd");
  return fd;
}

void epoll_add(int epoll_fd, int fd, std::uint64_t tag) {
  epoll_event event{};
  event.events = EPOLLIN;
  event.data.u64 = tag;
  if (::epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &event) != 0) {
    throw_errno(errno, "procpool::Pool: epoll_ctl");
  }
}

void drain_eventfd(int fd) {
  eventfd_t value;
  while (::eventfd_read(fd, &value) == 0) {
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Construction and teardown

PoolCore::PoolCore(PoolOptions options)
    : options_(std::move(options)),
      min_workers_(default_min_workers(options_)),
      max_workers_(options_.max_workers == 0 ? min_workers_ : options_.max_workers) {
  validate(options_, min_workers_, max_workers_);
  if (options_.shared_memory_size != 0) {
    try {
      shared_ = SharedRegion::create(options_.shared_memory_size);
    } catch (const Error& e) {
      throw Error(std::string("procpool::Pool: shared_memory_size ") +
                  std::to_string(options_.shared_memory_size) + ": " + e.what());
    }
  }
  slots_.resize(max_workers_);
  for (unsigned i = 0; i < max_workers_; ++i) {
    slots_[i].index = i;
    slots_[i].restart = RestartTracker(options_.restart);
  }
  epoll_fd_.reset(::epoll_create1(EPOLL_CLOEXEC));
  if (!epoll_fd_) throw_errno(errno, "procpool::Pool: epoll_create1");
  kick_fd_ = make_eventfd();
  epoll_add(epoll_fd_.get(), kick_fd_.get(), kEpollKick);
  tasks_.reserve(1024);
  deliveries_.reserve(256);
}

PoolCore::~PoolCore() {
  shutdown();  // never on the supervisor thread or in a callback: see destroy()
  {
    // A thread whose callback dropped the last reference may still be on its way out.
    std::unique_lock lock(mu_);
    changed_.wait(lock, [&] { return callers_inside_ == 0; });
  }
}

void PoolCore::start() {
  thread_ = std::thread([this] { run_loop(); });
  started_ = true;  // before the pool is shared with any other thread: never written again
  std::unique_lock lock(mu_);
  // The supervisor thread enforces every start-up bound (startup_timeout, and a crash loop
  // fails start-up), so this wait ends; the outer bound only guards against a bug there.
  const unsigned tries = std::max(1u, options_.restart.crash_loop_after) + 1;
  const auto bound = options_.startup_timeout * tries + options_.restart.max_backoff * tries +
                     std::chrono::seconds(10);
  const bool settled = changed_.wait_for(lock, bound, [&] {
    if (failure_) return true;
    std::size_t ready = 0;
    for (const WorkerSlot& slot : slots_) ready += slot.state == State::kReady;
    return ready >= min_workers_;
  });
  started_up_ = true;
  if (!failure_ && !settled) fail_pool_locked("workers did not become READY");
  if (failure_) {
    const std::string message = *failure_;
    lock.unlock();
    shutdown();
    throw Error("procpool::Pool: " + message);
  }
}

void PoolCore::shutdown() {
  std::unique_lock lock(mu_);
  if (!started_) return;
  if (!stopping_) {
    accepting_ = false;
    stopping_ = true;
    shutdown_deadline_ = Clock::now() + options_.shutdown_grace;
    kick();
  }
  // From one of the pool's callbacks, waiting would wait for that callback (or, on the pool's
  // own thread, for this thread): the stop goes on once the callback returns.
  if (in_callback() || on_supervisor_thread()) return;
  join_supervisor(lock);
}

void PoolCore::terminate() {
  std::unique_lock lock(mu_);
  if (!started_) return;
  if (!terminating_ && !stopped_) {
    terminating_ = true;
    accepting_ = false;
    stopping_ = true;
    shutdown_deadline_ = Clock::now();
    queue_.drain([&](std::uint32_t index) {
      resolve_locked(index, {},
                     TaskError(TaskError::Kind::ShuttingDown,
                               "pool terminated (Pool::terminate) before the task could run"));
      free_task_locked(index);
    });
    for (WorkerSlot& slot : slots_) {
      if (slot.live()) kill_locked(slot, "killed by Pool::terminate()", KillCause::kStop);
    }
    kick();
    changed_.notify_all();
  }
  deliver(lock);
  if (in_callback() || on_supervisor_thread()) return;  // as in shutdown()
  join_supervisor(lock);
}

// Waits until the supervisor thread has stopped, then joins it (once, whichever thread gets
// here first; the others wait for that join to finish).
void PoolCore::join_supervisor(std::unique_lock<std::mutex>& lock) {
  if (on_supervisor_thread()) {  // it would wait for itself
    lock.unlock();
    return;
  }
  changed_.wait(lock, [&] { return stopped_; });
  lock.unlock();
  std::call_once(joined_, [&] { thread_.join(); });
}

void PoolCore::kick() const noexcept { ::eventfd_write(kick_fd_.get(), 1); }

// ---------------------------------------------------------------------------------------------
// Submission

bool PoolCore::admit_locked(std::unique_lock<std::mutex>& lock, std::string_view handler,
                            std::string_view payload, const TaskOptions& options,
                            Completion& completion, std::uint32_t& handler_id) {
  auto reject = [&](TaskError::Kind kind, std::string message) {
    ++failed_;  // refused at submission: the caller sees a failed task, and so do the metrics
    deliveries_.push_back(Delivery{std::move(completion), {}, TaskError(kind, message)});
    return false;
  };
  if (!accepting_) {
    return reject(TaskError::Kind::ShuttingDown,
                  failure_ ? "pool failed: " + *failure_ : "pool is shutting down");
  }
  if (!last_handler_.empty() && handler == last_handler_) {  // a run of tasks: no hash lookup
    handler_id = last_handler_id_;
  } else {
    const auto found = handler_ids_.find(handler);
    if (found == handler_ids_.end()) {
      return reject(TaskError::Kind::UnknownHandler,
                    "no worker handler named \"" + std::string(handler.substr(0, 256)) + "\"");
    }
    handler_id = found->second;
    last_handler_.assign(handler);
    last_handler_id_ = handler_id;
  }
  if (payload.size() > options_.max_payload) {
    return reject(TaskError::Kind::PayloadTooLarge, "payload of " + std::to_string(payload.size()) +
                                                        " bytes exceeds max_payload " +
                                                        std::to_string(options_.max_payload));
  }
  if (options_.max_queue != 0 && queue_.size() >= options_.max_queue) {
    if (!options.wait_if_full) {
      return reject(TaskError::Kind::QueueFull,
                    "queue full (max_queue " + std::to_string(options_.max_queue) + ")");
    }
    changed_.wait(lock, [&] { return !accepting_ || queue_.size() < options_.max_queue; });
    if (!accepting_) return reject(TaskError::Kind::ShuttingDown, "pool is shutting down");
  }
  return true;
}

std::uint32_t PoolCore::new_task_locked(std::uint32_t handler_id, const TaskOptions& options,
                                        Completion completion) {
  std::uint32_t index;
  if (free_tasks_.empty()) {
    index = static_cast<std::uint32_t>(tasks_.size());
    tasks_.emplace_back();
  } else {
    index = free_tasks_.back();
    free_tasks_.pop_back();
  }
  TaskRecord& task = tasks_[index];
  ++task.generation;
  // The id names the record and its reuse: a stale id (an answer for an earlier occupant of the
  // record) never matches.
  task.id = (std::uint64_t{task.generation} << 32) | index;
  task.handler = handler_id;
  task.priority = options.priority;
  task.attempts = 0;
  task.max_attempts = options.max_attempts != 0 ? options.max_attempts : options_.max_attempts;
  task.timeout = options.timeout;
  task.chunk_items = 0;
  task.submitted = Clock::now();
  task.slot = -1;
  task.abandoned = false;
  task.began = Clock::time_point{};
  task.uncharged_deaths = 0;
  task.completion = std::move(completion);
  return index;
}

// Payloads of at least this size that need no retry go from the caller's buffer straight into
// a free worker's ring, without a copy kept in the pool (the large-payload path: one copy end
// to end). If that worker dies before starting the task, the task fails rather than being
// dispatched again: set max_attempts >= 2 to keep a copy and have it re-dispatched.
constexpr std::size_t kDirectPayloadMin = 64 * 1024;

std::uint32_t PoolCore::submit_locked(std::uint32_t handler_id, std::string_view payload,
                                      const TaskOptions& options, Completion completion) {
  const std::uint32_t index = new_task_locked(handler_id, options, std::move(completion));
  TaskRecord& task = tasks_[index];
  if (payload.size() >= kDirectPayloadMin && task.max_attempts == 1 && queue_.empty()) {
    if (WorkerSlot* slot = pick_slot_locked(task.submitted)) {
      task.payload.clear();
      task.payload_stored = false;
      start_dispatch_locked(*slot, index, task.submitted);
      if (!write_task_locked(*slot, &payload) && slot->partial_task == index) {
        // Only part of it fits now: keep it all, the rest is written as the worker makes room.
        tasks_[index].payload.assign(payload);
        tasks_[index].payload_stored = true;
      }
      return index;
    }
  }
  task.payload.assign(payload);
  task.payload_stored = true;
  queue_.push(task.priority, index);
  return index;
}

void PoolCore::submit(std::string_view handler, std::string_view payload,
                      const TaskOptions& options, Completion completion) {
  std::unique_lock lock(mu_);
  std::uint32_t handler_id = 0;
  if (admit_locked(lock, handler, payload, options, completion, handler_id)) {
    const std::uint64_t id =
        tasks_[submit_locked(handler_id, payload, options, std::move(completion))].id;
    dispatch_locked();
    publish_all_locked();
    if (options.cancel && !options.cancel->attach(weak_from_this(), id)) cancel_locked(id);
    if (!queue_.empty() && live_slots_locked() < max_workers_) kick();  // may scale up
  }
  deliver(lock);
}

std::future<std::string> PoolCore::submit_future(std::string_view handler, std::string_view payload,
                                                 const TaskOptions& options) {
  auto state = std::make_shared<FutureState>();
  submit(handler, payload, options, Completion([state](const TaskOutcome& outcome) noexcept {
           // Never throws, and always marks the state done: get() must not wait forever.
           try {
             if (outcome.ok()) {
               state->value.assign(outcome.value());
             } else {
               state->error.emplace(*outcome.error());
             }
           } catch (...) {
             state->exception = std::current_exception();
           }
           state->done.store(1, std::memory_order_release);
           state->done.notify_all();
         }));
  // Deferred: get() runs this in the caller's thread, which then waits on the result ring
  // itself (docs/design-rules.md §21) instead of sleeping until another thread hands the result
  // over.
  return std::async(std::launch::deferred, [self = shared_from_this(), state]() -> std::string {
    self->await(*state);
    if (state->exception) std::rethrow_exception(state->exception);
    if (state->error) throw *state->error;
    return std::move(state->value);
  });
}

void PoolCore::submit_batch(std::string_view handler, std::span<const std::string_view> payloads,
                            const TaskOptions& options, void* context,
                            Completion (*make)(void*, std::size_t)) {
  std::unique_lock lock(mu_);
  for (std::size_t i = 0; i < payloads.size(); ++i) {
    Completion completion = make(context, i);
    std::uint32_t handler_id = 0;
    if (!admit_locked(lock, handler, payloads[i], options, completion, handler_id)) continue;
    const std::uint32_t index =
        submit_locked(handler_id, payloads[i], options, std::move(completion));
    if (options.cancel && !options.cancel->attach(weak_from_this(), tasks_[index].id)) {
      cancel_locked(tasks_[index].id);
    }
    // Keep the workers busy while the batch is still being queued.
    if ((i & 63) == 63) {
      dispatch_locked();
      publish_all_locked();
    }
  }
  dispatch_locked();
  publish_all_locked();
  if (!queue_.empty() && live_slots_locked() < max_workers_) kick();
  deliver(lock);
}

namespace {

void item_callback_threw(std::size_t index, int pid) noexcept;  // with deliver()

// The completion of one chunk: fans the chunk's outcome out to its items. Its answers were
// checked by check_chunk_results before it runs. An item callback that throws is reported and
// counted; the items after it are still delivered.
Completion chunk_completion(std::shared_ptr<ItemCallback> on_item, std::size_t base,
                            std::uint32_t count) {
  return Completion([on_item = std::move(on_item), base, count](const TaskOutcome& outcome) {
    auto item = [&](std::size_t index, auto&& call) {
      try {
        call();
      } catch (...) {
        item_callback_threw(index, outcome.worker_pid());
      }
    };
    if (!outcome.ok()) {  // the chunk failed as a whole: every item says why
      for (std::uint32_t k = 0; k < count; ++k) {
        item(base + k, [&] { (*on_item)(base + k, outcome); });
      }
      return;
    }
    ChunkReader reader(outcome.value());
    std::uint32_t code = 0;
    std::size_t index = base;
    for (std::string_view bytes; reader.next_result(code, bytes); ++index) {
      item(index, [&] {
        if (code == 0) {
          (*on_item)(index, TaskOutcome(bytes, nullptr, outcome.worker_pid()));
        } else {
          const TaskError error(kind_of(static_cast<WorkerErrorCode>(code)), std::string(bytes),
                                outcome.worker_pid());
          (*on_item)(index, TaskOutcome({}, &error, outcome.worker_pid()));
        }
      });
    }
  });
}

}  // namespace

void PoolCore::submit_chunked(std::string_view handler, std::span<const std::string_view> payloads,
                              std::size_t chunk_size, const TaskOptions& options,
                              std::shared_ptr<ItemCallback> on_item) {
  std::unique_lock lock(mu_);
  if (chunk_size == 0) {  // Python's Pool.map: about four chunks per worker
    const std::size_t chunks = 4 * std::max<std::size_t>(1, max_workers_);
    chunk_size = std::max<std::size_t>(1, (payloads.size() + chunks - 1) / chunks);
  }
  chunk_size = std::min<std::size_t>(chunk_size, std::numeric_limits<std::uint32_t>::max());
  const std::size_t budget = options_.max_payload;
  std::size_t i = 0;
  while (i < payloads.size()) {
    if (kChunkCountSize + kChunkItemHeader + payloads[i].size() > budget) {
      ++failed_;  // too large even alone: fails by itself, the rest go on
      deliveries_.push_back(Delivery{
          Completion([on_item, i](const TaskOutcome& o) { (*on_item)(i, o); }),
          {},
          TaskError(TaskError::Kind::PayloadTooLarge,
                    "payload of " + std::to_string(payloads[i].size()) +
                        " bytes (in a chunk) exceeds max_payload " + std::to_string(budget))});
      ++i;
      continue;
    }
    std::size_t end = i;
    std::size_t bytes = kChunkCountSize;
    while (end < payloads.size() && end - i < chunk_size &&
           bytes + kChunkItemHeader + payloads[end].size() <= budget) {
      bytes += kChunkItemHeader + payloads[end].size();
      ++end;
    }
    const auto count = static_cast<std::uint32_t>(end - i);
    Completion completion = chunk_completion(on_item, i, count);
    std::uint32_t handler_id = 0;
    if (!admit_locked(lock, handler, {}, options, completion, handler_id)) {
      failed_ += count - 1;  // admit_locked counted the chunk once
      i = end;
      continue;
    }
    const std::uint32_t index = new_task_locked(handler_id, options, std::move(completion));
    TaskRecord& task = tasks_[index];
    task.chunk_items = count;
    ChunkWriter writer(task.payload);
    writer.begin();
    for (std::size_t k = i; k < end; ++k) writer.add(payloads[k]);
    task.payload_stored = true;
    queue_.push(task.priority, index);
    if (options.cancel && !options.cancel->attach(weak_from_this(), task.id)) {
      cancel_locked(task.id);
    }
    dispatch_locked();  // the workers start on the first chunks while the rest are encoded
    publish_all_locked();
    i = end;
  }
  if (!queue_.empty() && live_slots_locked() < max_workers_) kick();
  deliver(lock);
}

void PoolCore::cancel(std::uint64_t task_id) {
  check_owner();  // CancelSource reaches the core without Pool's checks
  std::unique_lock lock(mu_);
  cancel_locked(task_id);
  deliver(lock);
}

void PoolCore::cancel_locked(std::uint64_t task_id) {
  const auto index = static_cast<std::uint32_t>(task_id & 0xFFFFFFFFu);
  if (index >= tasks_.size() || tasks_[index].id != task_id) return;  // already resolved
  TaskRecord& task = tasks_[index];
  if (task.abandoned) return;
  if (task.slot < 0) {  // still queued
    queue_.remove(task.priority, index);
    resolve_locked(index, {}, TaskError(TaskError::Kind::Cancelled, "task cancelled"));
    free_task_locked(index);
    changed_.notify_all();
    return;
  }
  WorkerSlot& slot = slots_[static_cast<std::size_t>(task.slot)];
  const int pid = slot.pid;
  resolve_locked(index, {}, TaskError(TaskError::Kind::Cancelled, "task cancelled", pid));
  task.abandoned = true;
  --running_;
  // Not started yet: the worker drops it on the kCancel frame. Running: the handler sees
  // Task::cancelled(); the worker is killed if it is still running after cancel_grace.
  send_frame_locked(slot, FrameType::kCancel, task_id);
  slot.segment->control().cancel_task_id.store(task_id, std::memory_order_release);
  task.abandon_deadline = Clock::now() + options_.cancel_grace;
  slot.next_scan = std::min(slot.next_scan, task.abandon_deadline);
  kick();
}

// ---------------------------------------------------------------------------------------------
// Dispatch: least-loaded ready worker with room in its pipeline.

WorkerSlot* PoolCore::pick_slot_locked(Clock::time_point now) {
  WorkerSlot* best = nullptr;
  for (WorkerSlot& slot : slots_) {
    if (slot.state != State::kReady || slot.partial_task != WorkerSlot::kNoTask) continue;
    const unsigned depth = options_.pipeline_depth != 0 ? options_.pipeline_depth : slot.depth;
    if (slot.inflight.size() >= depth) continue;
    if (options_.pipeline_depth == 0 && !slot.inflight.empty() && running_long_locked(slot, now)) {
      continue;  // its task runs far longer than measured: nothing more waits behind it
    }
    if (best == nullptr || slot.inflight.size() < best->inflight.size()) best = &slot;
  }
  return best;
}

// The task at the head of the worker's pipeline has run for more than four times the worker's
// measured time per task (and at least kLongTask): the adaptive depth, measured on shorter
// tasks, would queue new tasks behind a long one.
bool PoolCore::running_long_locked(const WorkerSlot& slot, Clock::time_point now) const noexcept {
  const Clock::time_point began = tasks_[slot.inflight.front()].began;
  if (began == Clock::time_point{}) return false;
  const auto ran = std::chrono::duration_cast<std::chrono::nanoseconds>(now - began).count();
  const auto floor = std::chrono::duration_cast<std::chrono::nanoseconds>(kLongTask).count();
  return ran > std::max<std::int64_t>(floor, 4 * slot.service_ns);
}

void PoolCore::start_dispatch_locked(WorkerSlot& slot, std::uint32_t index, Clock::time_point now) {
  TaskRecord& task = tasks_[index];
  queue_wait_.record(micros_between(task.submitted, now));
  task.dispatched = now;
  task.slot = static_cast<int>(slot.index);
  ++task.attempts;
  if (task.attempts > 1) ++retried_;
  if (slot.inflight.empty()) {
    task.began = now;
    if (task.timeout.count() != 0) slot.next_scan = std::min(slot.next_scan, now + task.timeout);
  }
  ++running_;
  slot.inflight.push_back(index);
  slot.last_active = now;
  ++slot.dispatched;
  slot.partial_task = index;
  slot.partial_offset = 0;
  if (slot.recycle_after != 0 && slot.dispatched >= slot.recycle_after) {
    slot.state = State::kDraining;  // recycled once its in-flight tasks are answered
    kick();
  }
}

void PoolCore::dispatch_locked() {
  if (queue_.empty()) return;
  const auto now = Clock::now();
  while (!queue_.empty()) {
    WorkerSlot* slot = pick_slot_locked(now);
    if (slot == nullptr) break;
    const std::uint32_t index = *queue_.pop();
    start_dispatch_locked(*slot, index, now);
    write_task_locked(*slot);
  }
  if (options_.max_queue != 0) changed_.notify_all();  // room in the queue
}

bool PoolCore::write_task_locked(WorkerSlot& slot, const std::string_view* source) {
  if (slot.partial_task == WorkerSlot::kNoTask) return true;
  TaskRecord& task = tasks_[slot.partial_task];
  RingWriter& writer = *slot.writer;
  const std::size_t chunk = writer.max_payload() - sizeof(FrameHeader);
  FrameHeader header;
  header.type = FrameType::kTask;
  header.handler_id = task.handler;
  header.task_id = task.id;
  header.attempt = task.attempts;
  const std::uint16_t chunk_flag = task.chunk_items != 0 ? kFrameChunk : 0;
  const std::string_view payload = source != nullptr ? *source : std::string_view(task.payload);
  do {
    const std::size_t size = std::min(chunk, payload.size() - slot.partial_offset);
    const bool last = slot.partial_offset + size == payload.size();
    header.flags = static_cast<std::uint16_t>(chunk_flag | (last ? 0 : kFrameMore));
    const WriteStatus status =
        write_frame(writer, header, as_bytes(payload.substr(slot.partial_offset, size)));
    if (status == WriteStatus::kFull) return false;  // continued when the worker makes room
    if (status != WriteStatus::kOk) {
      kill_locked(slot,
                  std::string("protocol violation: ") + std::string(to_string(writer.fault())),
                  KillCause::kProtocolViolation);
      return false;
    }
    slot.partial_offset += size;
  } while (slot.partial_offset < payload.size());
  slot.partial_task = WorkerSlot::kNoTask;
  return true;
}

void PoolCore::publish_all_locked() {
  for (WorkerSlot& slot : slots_) {
    if (slot.writer && slot.live()) slot.writer->publish();
  }
}

void PoolCore::send_frame_locked(WorkerSlot& slot, FrameType type, std::uint64_t task_id) {
  if (!slot.writer || !slot.live()) return;
  FrameHeader header;
  header.type = type;
  header.task_id = task_id;
  // Control frames are tiny; if the ring is full of task fragments the worker is busy with
  // them, and the control block / kill paths cover what the frame would have said.
  if (slot.partial_task == WorkerSlot::kNoTask) write_frame(*slot.writer, header, {});
  slot.writer->publish();
}

// ---------------------------------------------------------------------------------------------
// Results

void PoolCore::drain_all_locked() {
  for (WorkerSlot& slot : slots_) {
    if (slot.reader && slot.live()) drain_slot_locked(slot);
  }
}

void PoolCore::drain_slot_locked(WorkerSlot& slot) {
  RingReader& reader = *slot.reader;
  std::span<const std::byte> record;
  ReadStatus status;
  const std::uint64_t incarnation = slot.incarnation;
  while ((status = reader.try_read(record)) == ReadStatus::kOk) {
    FrameHeader header;
    std::span<const std::byte> payload;
    const DecodeStatus decoded = decode_frame(record, header, payload);
    if (decoded != DecodeStatus::kOk) {
      kill_locked(slot, "protocol violation: " + std::string(to_string(decoded)),
                  KillCause::kProtocolViolation);
      return;
    }
    on_frame_locked(slot, header, payload);
    if (slot.incarnation != incarnation || !slot.reader) return;  // killed meanwhile
    if (slot.killed) break;
  }
  reader.release();
  if (status == ReadStatus::kCorrupt) {
    kill_locked(slot, "protocol violation: " + std::string(to_string(reader.fault())),
                KillCause::kProtocolViolation);
    return;
  }
  // Room the worker made may let a fragmented task continue.
  if (slot.partial_task != WorkerSlot::kNoTask && write_task_locked(slot)) slot.writer->publish();
}

void PoolCore::on_frame_locked(WorkerSlot& slot, const FrameHeader& header,
                               std::span<const std::byte> payload) {
  switch (header.type) {
    case FrameType::kReady: {
      std::vector<std::string> names;
      if (slot.state != State::kStarting || !decode_handler_names(payload, names)) {
        kill_locked(slot, "protocol violation: unexpected or malformed READY",
                    KillCause::kProtocolViolation);
        return;
      }
      if (handler_names_.empty()) {
        handler_names_ = names;
        for (std::uint32_t i = 0; i < names.size(); ++i) handler_ids_.emplace(names[i], i);
      } else if (names != handler_names_) {
        kill_locked(slot, "announced different handlers than the pool's other workers",
                    KillCause::kProtocolViolation);
        return;
      }
      slot.state = State::kReady;
      slot.ready_at = slot.last_active = Clock::now();
      slot.restart.on_ready(slot.ready_at);
      PoolEvent ready;
      ready.kind = PoolEvent::Kind::WorkerReady;
      ready.pid = slot.pid;
      emit_locked(slot, std::move(ready));
      if (options_.on_event) kick();  // the supervisor thread runs the event
      changed_.notify_all();
      return;
    }
    case FrameType::kResult:
    case FrameType::kError: {
      if (slot.assembling && slot.assembly_task != header.task_id) {
        kill_locked(slot, "protocol violation: result fragments interleaved",
                    KillCause::kProtocolViolation);
        return;
      }
      if ((header.flags & kFrameMore) != 0 || slot.assembling) {
        if (!slot.assembling) {
          slot.assembly.clear();
          slot.assembly_task = header.task_id;
          slot.assembling = true;
        }
        if (slot.assembly.size() + payload.size() > options_.max_payload + 64 * 1024) {
          kill_locked(slot, "protocol violation: result above max_payload",
                      KillCause::kProtocolViolation);
          return;
        }
        slot.assembly.append(reinterpret_cast<const char*>(payload.data()), payload.size());
        if ((header.flags & kFrameMore) != 0) return;
        slot.assembling = false;
        complete_locked(slot, header.task_id, header.type == FrameType::kResult,
                        (header.flags & kFrameChunk) != 0, slot.assembly);
        return;
      }
      complete_locked(
          slot, header.task_id, header.type == FrameType::kResult,
          (header.flags & kFrameChunk) != 0,
          std::string_view(reinterpret_cast<const char*>(payload.data()), payload.size()));
      return;
    }
    default:
      kill_locked(slot, "protocol violation: unexpected frame type from worker",
                  KillCause::kProtocolViolation);
      return;
  }
}

void PoolCore::complete_locked(WorkerSlot& slot, std::uint64_t task_id, bool ok, bool chunk,
                               std::string_view body) {
  const auto index = static_cast<std::uint32_t>(task_id & 0xFFFFFFFFu);
  auto on_board = std::find(slot.inflight.begin(), slot.inflight.end(), index);
  if (index >= tasks_.size() || tasks_[index].id != task_id || on_board == slot.inflight.end()) {
    kill_locked(slot,
                "protocol violation: answer for task " + std::to_string(task_id) +
                    ", which is not on board",
                KillCause::kProtocolViolation);
    return;
  }
  if (chunk != (ok && tasks_[index].chunk_items != 0)) {
    kill_locked(slot,
                chunk ? "protocol violation: chunked answer for a task that is not a chunk"
                      : "protocol violation: plain answer for a chunked task",
                KillCause::kProtocolViolation);
    return;
  }
  slot.last_answered_id = task_id;
  if (on_board == slot.inflight.begin()) {
    slot.inflight.pop_front();  // the usual case: answers come in dispatch order
  } else {
    slot.inflight.erase(on_board);
  }
  const auto now = Clock::now();
  if (!slot.inflight.empty()) {  // the next task starts now: its timeout counts from here
    TaskRecord& next = tasks_[slot.inflight.front()];
    if (next.began == Clock::time_point{}) {
      next.began = now;
      if (next.timeout.count() != 0) slot.next_scan = std::min(slot.next_scan, now + next.timeout);
    }
  }
  slot.last_active = now;
  TaskRecord& task = tasks_[index];
  adapt_depth_locked(slot, task, now);  // the service time also decides whether to spin
  if (task.abandoned) {  // resolved earlier (cancelled or timed out); drop the late answer
    free_task_locked(index);
    return;
  }
  --running_;
  run_time_.record(micros_between(task.dispatched, now));
  if (ok && task.chunk_items != 0) {
    bool out_of_memory = false;
    const std::int64_t failures = check_chunk_results(body, task.chunk_items, out_of_memory);
    if (failures < 0) {
      resolve_locked(index, {},
                     TaskError(TaskError::Kind::WorkerCrashed,
                               "protocol violation: malformed chunk answer from " +
                                   describe_slot(slot) + ", which was killed",
                               slot.pid));
      free_task_locked(index);
      kill_locked(slot, "protocol violation: malformed chunk answer",
                  KillCause::kProtocolViolation);
      return;
    }
    slot.tasks_done += task.chunk_items - static_cast<std::uint64_t>(failures);
    slot.tasks_failed += static_cast<std::uint64_t>(failures);
    slot.slot_tasks_done += task.chunk_items - static_cast<std::uint64_t>(failures);
    slot.slot_tasks_failed += static_cast<std::uint64_t>(failures);
    if (out_of_memory && slot.state == State::kReady) {  // recycled, as for a plain task
      slot.state = State::kDraining;
      kick();
    }
    resolve_locked(index, std::string(body), std::nullopt, slot.pid,
                   static_cast<std::uint32_t>(failures));
  } else if (ok) {
    ++slot.tasks_done;
    ++slot.slot_tasks_done;
    resolve_locked(index, std::string(body), std::nullopt, slot.pid);
  } else {
    ++slot.tasks_failed;
    ++slot.slot_tasks_failed;
    WorkerErrorCode code{};
    std::string_view message;
    if (!decode_error(as_bytes(body), code, message)) {
      resolve_locked(index, {},
                     TaskError(TaskError::Kind::WorkerCrashed,
                               "protocol violation: malformed error frame from " +
                                   describe_slot(slot) + ", which was killed",
                               slot.pid));
      free_task_locked(index);
      kill_locked(slot, "protocol violation: malformed error frame", KillCause::kProtocolViolation);
      return;
    }
    TaskError::Kind kind = kind_of(code);
    if (code == WorkerErrorCode::kMemoryLimit) {
      // Out of memory inside the handler (at RLIMIT_DATA, or the machine's): the heap may be in
      // any state, so the worker is recycled once the tasks on board are answered.
      kind = TaskError::Kind::MemoryLimit;
      std::string text =
          describe_slot(slot) + " ran out of memory in the handler (" + std::string(message) + ")";
      if (options_.max_rss_hard != 0) {
        text += "; its RLIMIT_DATA is max_rss_hard " + mebibytes_text(options_.max_rss_hard);
      }
      if (slot.state == State::kReady) slot.state = State::kDraining;
      kick();
      resolve_locked(index, {}, TaskError(kind, text, slot.pid));
      free_task_locked(index);
      return;
    }
    resolve_locked(index, {}, TaskError(kind, std::string(message), slot.pid));
  }
  free_task_locked(index);
}

// The adaptive pipeline: the worker was busy with this task since the later of its dispatch and
// the previous answer; an EWMA (1/16) of that is its time per task, and the depth keeps about
// kPipelineWork of work queued behind the task it runs.
void PoolCore::adapt_depth_locked(WorkerSlot& slot, const TaskRecord& task, Clock::time_point now) {
  const Clock::time_point began = std::max(slot.last_answer, task.dispatched);
  slot.last_answer = now;
  slot.service_ns = AdaptiveDepth::next_service_ns(
      slot.service_ns, std::chrono::duration_cast<std::chrono::nanoseconds>(now - began).count());
  slot.depth = AdaptiveDepth::depth(slot.service_ns);
}

bool PoolCore::answers_soon_locked() const noexcept {
  for (const WorkerSlot& slot : slots_) {
    if (slot.live() && !slot.inflight.empty() &&
        slot.service_ns <
            std::chrono::duration_cast<std::chrono::nanoseconds>(kSpinWorthy).count()) {
      return true;
    }
  }
  return false;
}

void PoolCore::resolve_locked(std::uint32_t index, std::string value,
                              std::optional<TaskError> error, int pid,
                              std::uint32_t item_failures) {
  TaskRecord& task = tasks_[index];
  const std::uint64_t items = task.chunk_items != 0 ? task.chunk_items : 1;
  if (error) {
    failed_ += items;
  } else {
    completed_ += items - item_failures;
    failed_ += item_failures;
  }
  if (error && pid == 0) pid = error->worker_pid();
  deliveries_.push_back(
      Delivery{std::move(task.completion), std::move(value), std::move(error), pid});
}

std::int64_t PoolCore::check_chunk_results(std::string_view body, std::uint32_t items,
                                           bool& out_of_memory) noexcept {
  ChunkReader reader(body);
  if (reader.count() != items) return -1;
  std::int64_t failures = 0;
  std::uint32_t code = 0;
  for (std::string_view bytes; reader.next_result(code, bytes);) {
    if (code > kMaxWorkerErrorCode) return -1;
    if (code != 0) ++failures;
    if (code == static_cast<std::uint32_t>(WorkerErrorCode::kMemoryLimit)) out_of_memory = true;
  }
  return reader.complete() ? failures : -1;
}

void PoolCore::free_task_locked(std::uint32_t index) {
  TaskRecord& task = tasks_[index];
  task.id = 0;
  task.slot = -1;
  task.abandoned = false;
  if (task.payload.capacity() > 64 * 1024) std::string().swap(task.payload);
  free_tasks_.push_back(index);
  if (running_ == 0 && queue_.empty()) changed_.notify_all();  // idle
}

// ---------------------------------------------------------------------------------------------
// Callers and hosts: callbacks that throw or stop the pool, fork(), SIGPIPE

namespace {

// Writes to the host's stderr without ever raising SIGPIPE in it (its stderr may be a pipe
// whose reader is gone): SIGPIPE is blocked in this thread around the write, and the one the
// write raised, if any, is consumed before the old mask comes back.
void write_stderr_quietly(const char* bytes, std::size_t size) noexcept {
  sigset_t pipe_only, old_mask, pending;
  sigemptyset(&pipe_only);
  sigaddset(&pipe_only, SIGPIPE);
  if (::pthread_sigmask(SIG_BLOCK, &pipe_only, &old_mask) != 0) return;
  const int saved_errno = errno;
  const bool was_pending = ::sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1;
  if (::write(STDERR_FILENO, bytes, size) < 0 && errno == EPIPE && !was_pending) {
    const timespec zero{0, 0};
    while (::sigtimedwait(&pipe_only, nullptr, &zero) < 0 && errno == EINTR) {
    }
  }
  errno = saved_errno;
  ::pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
}

// The callbacks this thread runs now, innermost first: a callback may make this pool or
// another one deliver more.
struct CallbackScope {
  const PoolCore* core;
  CallbackScope* outer;
  std::uint64_t errors = 0;
};
thread_local CallbackScope* tls_callbacks = nullptr;

// Called in a catch block: reports what a callback threw (once per occurrence) and counts it in
// the innermost scope, whose pool adds it to PoolMetrics::callback_errors.
void callback_threw(const char* callback, long long item, int pid) noexcept {
  const char* what = "an exception not derived from std::exception";
  try {
    throw;
  } catch (const std::exception& e) {
    what = e.what();
  } catch (...) {
  }
  char item_text[48] = "";
  if (item >= 0) std::snprintf(item_text, sizeof item_text, " for item %lld", item);
  char pid_text[48] = "";
  if (pid > 0) std::snprintf(pid_text, sizeof pid_text, " (task answered by worker pid %d)", pid);
  char text[1024];
  int n = std::snprintf(text, sizeof text,
                        "procpool: %s%s threw: %s%s; caught and counted in "
                        "PoolMetrics::callback_errors, the other callbacks still run\n",
                        callback, item_text, what, pid_text);
  if (n < 0) return;
  if (static_cast<std::size_t>(n) >= sizeof text) {
    n = sizeof text - 1;
    text[n - 1] = '\n';
  }
  write_stderr_quietly(text, static_cast<std::size_t>(n));
  if (tls_callbacks != nullptr) ++tls_callbacks->errors;
}

void item_callback_threw(std::size_t index, int pid) noexcept {
  callback_threw("a submit_chunked item callback", static_cast<long long>(index), pid);
}

std::atomic<std::uint64_t> g_forks{0};  // fork()s this process came out of as the child

}  // namespace

std::uint64_t PoolCore::fork_generation() noexcept {
  static const bool registered = [] {
    return ::pthread_atfork(nullptr, nullptr,
                            [] { g_forks.fetch_add(1, std::memory_order_relaxed); }) == 0;
  }();
  (void)registered;
  return g_forks.load(std::memory_order_relaxed);
}

int PoolCore::current_pid() noexcept { return static_cast<int>(::getpid()); }

bool PoolCore::forked() const noexcept { return fork_generation() != born_generation_; }

void PoolCore::check_owner() const {
  if (!forked()) return;
  throw Error("procpool::Pool: this pool belongs to process " + std::to_string(owner_pid_) +
              "; a fork()ed child (pid " + std::to_string(current_pid()) +
              ") cannot use it (its workers and threads are the parent's): create a new Pool "
              "in the child");
}

bool PoolCore::in_callback() const noexcept {
  for (const CallbackScope* scope = tls_callbacks; scope != nullptr; scope = scope->outer) {
    if (scope->core == this) return true;
  }
  return false;
}

bool PoolCore::on_supervisor_thread() const noexcept {
  return thread_.get_id() == std::this_thread::get_id();
}

std::uint64_t PoolCore::callback_errors() const {
  std::lock_guard lock(mu_);
  return callback_errors_;
}

void PoolCore::destroy(PoolCore* core) noexcept {
  if (core->forked()) return;  // the parent's: left alone (a deliberate leak in the child)
  if (core->in_callback() || core->on_supervisor_thread()) {
    try {
      std::thread([core] { delete core; }).detach();
    } catch (...) {
      // No thread to finish the stop on: leaking the pool beats destroying it under a
      // running callback.
    }
    return;
  }
  delete core;
}

void PoolCore::deliver(std::unique_lock<std::mutex>& lock) {
  if (deliveries_.empty()) return;
  std::vector<Delivery> batch;
  if (!spare_batches_.empty()) {
    batch = std::move(spare_batches_.back());
    spare_batches_.pop_back();
  }
  batch.swap(deliveries_);
  in_delivery_ += batch.size();
  ++callers_inside_;
  lock.unlock();
  // A callback that throws is reported and counted; the rest of the batch still runs, on the
  // pool's own thread as in another thread's get(), where it must not escape either.
  CallbackScope scope{this, tls_callbacks};
  tls_callbacks = &scope;
  for (Delivery& d : batch) {
    try {
      d.completion(TaskOutcome(d.value, d.error ? &*d.error : nullptr, d.pid));
    } catch (...) {
      callback_threw("a completion callback", -1, d.pid);
    }
  }
  const std::size_t delivered = batch.size();
  batch.clear();
  tls_callbacks = scope.outer;
  lock.lock();
  callback_errors_ += scope.errors;
  --callers_inside_;
  spare_batches_.push_back(std::move(batch));
  in_delivery_ -= delivered;
  if ((in_delivery_ == 0 && running_ == 0 && queue_.empty()) ||
      (callers_inside_ == 0 && stopped_)) {
    changed_.notify_all();
  }
}

// A thread waiting for one future: spin on the result rings first (draining them itself), then
// sleep until the supervisor thread resolves the task.
void PoolCore::await(FutureState& state) {
  if (state.done.load(std::memory_order_acquire) != 0) return;
  check_owner();  // the child's copy of the rings is the parent's
  bool spin = true;
  {
    std::lock_guard lock(mu_);
    spin = answers_soon_locked();
  }
  if (!spin) {
    // A long task: sleep at once. The supervisor thread is announcing and draining already (no
    // poller keeps it from that; the last one to leave kicked it), so no kick either.
    while (state.done.load(std::memory_order_acquire) == 0) state.done.wait(0);
    return;
  }
  pollers_.fetch_add(1, std::memory_order_acq_rel);
  const auto spin_until = Clock::now() + WaitPolicy::kDefaultSpin;
  for (std::uint32_t i = 0; state.done.load(std::memory_order_acquire) == 0; ++i) {
    if ((i & 3) == 0) {
      std::unique_lock lock(mu_, std::try_to_lock);
      if (lock.owns_lock()) {
        drain_all_locked();
        dispatch_locked();
        publish_all_locked();
        deliver(lock);
        continue;
      }
    }
    cpu_relax();
    if ((i & 15) == 15 && Clock::now() >= spin_until) break;
  }
  pollers_.fetch_sub(1, std::memory_order_acq_rel);
  if (state.done.load(std::memory_order_acquire) != 0) return;
  kick();  // the supervisor thread takes over the announcing and the draining
  while (state.done.load(std::memory_order_acquire) == 0) state.done.wait(0);
}

void PoolCore::wait_idle() {
  check_owner();
  if (in_callback() || on_supervisor_thread()) {
    throw Error(
        "procpool::Pool::wait_idle() called from one of the pool's completion callbacks (or "
        "another callback on the pool's own thread): it would wait for that callback itself");
  }
  std::unique_lock lock(mu_);
  // Counted: a callback run below may drop the pool's last reference.
  struct Inside {
    PoolCore& core;
    explicit Inside(PoolCore& c) : core(c) { ++core.callers_inside_; }
    ~Inside() {
      if (--core.callers_inside_ == 0 && core.stopped_) core.changed_.notify_all();
    }
  } inside(*this);
  pollers_.fetch_add(1, std::memory_order_acq_rel);
  const auto spin_until = Clock::now() + WaitPolicy::kDefaultSpin;
  auto idle = [&] {
    return running_ == 0 && queue_.empty() && deliveries_.empty() && in_delivery_ == 0;
  };
  while (!idle() && answers_soon_locked() && Clock::now() < spin_until) {
    drain_all_locked();
    dispatch_locked();
    publish_all_locked();
    deliver(lock);
    lock.unlock();
    cpu_relax();
    lock.lock();
  }
  pollers_.fetch_sub(1, std::memory_order_acq_rel);
  kick();
  deliver(lock);
  changed_.wait(lock, [&] { return idle() || stopped_; });
}

// ---------------------------------------------------------------------------------------------
// The supervisor thread

void PoolCore::run_loop() {
  std::unique_lock lock(mu_);
  for (unsigned i = 0; i < min_workers_; ++i) {
    spawn_locked(slots_[i]);
    if (failure_) break;
  }
  epoll_event events[64];
  Clock::time_point spin_until{};
  while (true) {
    const auto now = Clock::now();
    drain_all_locked();
    const Clock::time_point next_timer = std::min(timers_locked(now), autoscale_locked(now));
    dispatch_locked();
    publish_all_locked();
    if (running_ == 0 && queue_.empty()) changed_.notify_all();
    const bool had_deliveries = !deliveries_.empty();
    deliver(lock);
    flush_events(lock);
    if (stopping_ && live_slots_locked() == 0 && queue_.empty() && running_ == 0) {
      bool backoff = false;
      for (const WorkerSlot& slot : slots_) backoff |= slot.state == State::kBackoff;
      if (!backoff) break;
    }
    if (had_deliveries) {
      spin_until = Clock::now() + WaitPolicy::kDefaultSpin;
      continue;
    }

    // Decide how to sleep. While tasks are on board and results are flowing, spin a little on
    // the rings (cheaper than a doorbell and a wake-up per batch).
    const bool busy = running_ != 0 && answers_soon_locked();
    if (busy && Clock::now() < spin_until && pollers_.load(std::memory_order_acquire) == 0) {
      lock.unlock();
      for (int i = 0; i < 32; ++i) cpu_relax();
      lock.lock();
      continue;
    }
    auto timeout = std::chrono::duration_cast<milliseconds>(next_timer - Clock::now());
    if (timeout.count() < 0) timeout = milliseconds(0);
    // Announce that we sleep on every live worker's result ring (and on the task rings that
    // wait for room), so a worker that publishes rings the doorbell; then re-check the rings,
    // the announcement's other half (see EventCount).
    const bool announce = pollers_.load(std::memory_order_acquire) == 0;
    std::vector<EventCount*>& announced = announced_;
    announced.clear();
    if (announce) {
      for (WorkerSlot& slot : slots_) {
        if (!slot.live() || !slot.segment) continue;
        slot.segment->to_supervisor().readable.prepare_wait();
        announced.push_back(&slot.segment->to_supervisor().readable);
        if (slot.partial_task != WorkerSlot::kNoTask) {
          slot.segment->to_worker().writable.prepare_wait();
          announced.push_back(&slot.segment->to_worker().writable);
        }
      }
    } else {
      // Pollers drain the rings; look again soon in case they stop.
      timeout = std::min(timeout, milliseconds(1));
    }
    bool ready_now = false;
    for (WorkerSlot& slot : slots_) {
      // A killed worker's rings may stay faulted ("ready") until it is reaped, and only
      // epoll_wait below sees its pidfd: do not let them keep this thread from sleeping.
      if (!slot.live() || !slot.reader || slot.killed) continue;
      if (slot.reader->poll()) ready_now = true;
      if (slot.partial_task != WorkerSlot::kNoTask &&
          slot.writer->can_reserve(static_cast<std::uint32_t>(sizeof(FrameHeader) + 1))) {
        ready_now = true;
      }
    }
    int count = 0;
    if (!ready_now) {
      lock.unlock();
      count = ::epoll_wait(epoll_fd_.get(), events, 64, static_cast<int>(timeout.count()));
      lock.lock();
    }
    for (EventCount* event : announced) event->cancel_wait();
    spin_until = Clock::now() + WaitPolicy::kDefaultSpin;
    for (int i = 0; i < count; ++i) {
      const std::uint64_t tag = events[i].data.u64;
      const auto slot_index = static_cast<std::size_t>(tag & 0xFFFFFFFFu);
      switch (tag & kEpollKindMask) {
        case kEpollDoorbell:
          if (slot_index < slots_.size()) doorbell_locked(slots_[slot_index]);
          break;
        case kEpollKick:
          drain_eventfd(kick_fd_.get());
          break;
        case kEpollStderr:
          if (slot_index < slots_.size()) read_stderr_locked(slots_[slot_index]);
          break;
        case kEpollPidfd:
          if (slot_index < slots_.size() && slots_[slot_index].pidfd.valid()) {
            drain_all_locked();  // results published before the exit still count
            reap(slots_[slot_index]);
          }
          break;
      }
    }
  }
  // Whatever is left (the grace ran out) fails; the workers are gone.
  queue_.drain([&](std::uint32_t index) {
    resolve_locked(index, {}, TaskError(TaskError::Kind::ShuttingDown, "pool shut down"));
    free_task_locked(index);
  });
  stopped_ = true;
  changed_.notify_all();
  deliver(lock);
}

// Releases what a spawn that failed part way had set up.
void PoolCore::undo_spawn_locked(WorkerSlot& slot, UniqueFd (&stderr_pipe)[2]) {
  stderr_pipe[0].reset();
  stderr_pipe[1].reset();
  slot.doorbell_fd.reset();
  slot.reader.reset();
  slot.writer.reset();
  slot.segment.reset();
  if (slot.pidfd) {  // launched, then registering it failed: do not leave it running
    ::syscall(SYS_pidfd_send_signal, slot.pidfd.get(), SIGKILL, nullptr, 0);
    ::waitpid(slot.pid, nullptr, 0);
    slot.pidfd.reset();
    slot.stderr_fd.reset();
    slot.pid = -1;
  }
}

void PoolCore::spawn_locked(WorkerSlot& slot) {
  const auto now = Clock::now();
  last_spawn_ = now;
  SegmentConfig config;
  config.to_worker_capacity = options_.ring_capacity;
  config.to_supervisor_capacity = options_.ring_capacity;
  config.heartbeat_interval_ms = static_cast<std::uint32_t>(options_.heartbeat_interval.count());
  UniqueFd stderr_pipe[2];
  try {
    slot.segment.emplace(Segment::create(config, ++next_incarnation_));
    slot.writer.emplace(slot.segment->supervisor_writer());
    slot.reader.emplace(slot.segment->supervisor_reader());
    FrameHeader init;
    init.type = FrameType::kInit;
    write_frame(*slot.writer, init,
                as_bytes(encode_init(options_.max_payload, options_.worker_data)));
    slot.writer->publish();
    int pipe_fds[2];
    if (::pipe2(pipe_fds, O_CLOEXEC) != 0) throw_errno(errno, "pipe2");
    stderr_pipe[0].reset(pipe_fds[0]);
    stderr_pipe[1].reset(pipe_fds[1]);
    slot.doorbell_fd = make_eventfd();
    slot.doorbell_rings = 0;
    LaunchSpec spec;
    spec.executable = options_.executable;
    spec.args = options_.args;
    spec.env = options_.env;
    spec.env.emplace_back(kSegmentFdEnv, std::to_string(slot.segment->fd()));
    spec.env.emplace_back(kDoorbellFdEnv, std::to_string(slot.doorbell_fd.get()));
    spec.inherit_fds = {slot.segment->fd(), slot.doorbell_fd.get()};
    if (shared_.fd() >= 0) {
      spec.env.emplace_back(kSharedFdEnv, std::to_string(shared_.fd()));
      spec.inherit_fds.push_back(shared_.fd());
    }
    spec.stderr_fd = stderr_pipe[1].get();
    spec.rlimit_data = options_.max_rss_hard;
    const LaunchedProcess process = launch(spec);
    stderr_pipe[1].reset();
    slot.pid = process.pid;
    slot.pidfd.reset(process.pidfd);
    slot.stderr_fd = std::move(stderr_pipe[0]);
    ::fcntl(slot.stderr_fd.get(), F_SETFL, O_NONBLOCK);
    epoll_add(epoll_fd_.get(), slot.pidfd.get(), kEpollPidfd | slot.index);
    epoll_add(epoll_fd_.get(), slot.stderr_fd.get(), kEpollStderr | slot.index);
    epoll_add(epoll_fd_.get(), slot.doorbell_fd.get(), kEpollDoorbell | slot.index);
  } catch (const SystemError& e) {
    undo_spawn_locked(slot, stderr_pipe);
    spawn_failed_locked(slot, e.what(), e.code());
    return;
  } catch (const Error& e) {
    undo_spawn_locked(slot, stderr_pipe);
    spawn_failed_locked(slot, e.what(), 0);
    return;
  }
  slot.incarnation = next_incarnation_;
  slot.state = State::kStarting;
  slot.started = slot.last_active = now;
  slot.started_unix_s = unix_now_s();
  slot.deadline = now + options_.startup_timeout;
  slot.dispatched = slot.tasks_done = slot.tasks_failed = 0;
  slot.killed = false;
  slot.last_answered_id = 0;
  slot.kill_cause = KillCause::kUnhealthy;
  slot.kill_reason.clear();
  slot.timed_out_task = WorkerSlot::kNoTask;
  slot.control_lied = false;
  slot.service_ns = 0;
  slot.depth = AdaptiveDepth::kUnmeasured;
  slot.next_scan = Clock::time_point::max();
  slot.next_memory_check = now;
  slot.memory_exceeded = false;
  slot.assembling = false;
  slot.partial_task = WorkerSlot::kNoTask;
  slot.stderr_tail = StderrTail();
  slot.recycle_after = 0;
  if (options_.max_tasks_per_worker != 0) {
    const std::uint64_t base = options_.max_tasks_per_worker;
    slot.recycle_after = base + rng_() % (base / 10 + 1);
  }
  PoolEvent started;
  started.kind = PoolEvent::Kind::WorkerStarted;
  started.pid = slot.pid;
  emit_locked(slot, std::move(started));
}

namespace {

// A launch error that the next attempt cannot fix by itself: the program is missing, not
// executable, or not a program. Everything else (EMFILE, ENFILE, EAGAIN from fork, ENOMEM,
// ETXTBSY while a binary is being replaced) may pass.
bool permanent_spawn_error(int code) noexcept {
  switch (code) {
    case 0:  // not a system call's failure: a bad spec (path, argument, environment)
    case ENOENT:
    case EACCES:
    case EPERM:
    case ENOEXEC:
    case EISDIR:
    case ENOTDIR:
    case ELOOP:
    case ENAMETOOLONG:
      return true;
    default:
      return false;
  }
}

}  // namespace

// Starting a worker failed. While the pool is being constructed, a permanent error fails it at
// once (the constructor throws the reason); otherwise the slot backs off and tries again, as
// after a broken start: a binary replaced non-atomically during a redeploy, or a moment of fd
// or process-table exhaustion, must not stop the pool or its healthy workers.
void PoolCore::spawn_failed_locked(WorkerSlot& slot, const char* reason, int code) {
  const std::string what = std::string("cannot start worker: ") + reason;
  PoolEvent failed;
  failed.kind = PoolEvent::Kind::SpawnFailed;
  failed.message = what;
  failed.error_code = code;
  emit_locked(slot, std::move(failed));
  slot.pid = -1;
  if (!started_up_ && permanent_spawn_error(code)) {
    fail_pool_locked(what);
    slot.state = State::kEmpty;
    return;
  }
  schedule_restart_locked(slot, DeathKind::kBroken,
                          "worker " + std::to_string(slot.index) + ": " + what, Clock::now());
}

void PoolCore::emit_locked(const WorkerSlot& slot, PoolEvent event) {
  if (!options_.on_event) return;
  event.at = Clock::now();
  event.slot = slot.index;
  event.incarnation = slot.incarnation;
  if (event.consecutive_failures == 0) {
    event.consecutive_failures = static_cast<unsigned>(slot.restart.broken_in_a_row());
  }
  events_.push_back(std::move(event));
}

// Runs the queued events on the supervisor thread (the only caller), so they run in order and
// never on a caller's thread.
void PoolCore::flush_events(std::unique_lock<std::mutex>& lock) {
  if (events_.empty()) return;
  events_out_.swap(events_);
  lock.unlock();
  // As in deliver(): what the callback throws is reported and counted, and the rest still run.
  CallbackScope scope{this, tls_callbacks};
  tls_callbacks = &scope;
  for (const PoolEvent& event : events_out_) {
    try {
      options_.on_event(event);
    } catch (...) {
      callback_threw("PoolOptions::on_event", -1, event.pid);
    }
  }
  tls_callbacks = scope.outer;
  events_out_.clear();
  lock.lock();
  callback_errors_ += scope.errors;
}

void PoolCore::kill_locked(WorkerSlot& slot, std::string reason, KillCause cause) {
  if (!slot.pidfd) return;
  if (!slot.killed) {
    slot.killed = true;
    slot.kill_reason = std::move(reason);
    slot.kill_cause = cause;
  }
  // Through the pidfd (the pid cannot have been reused: we have not reaped it), then the
  // process group, for any children of the worker (PDEATHSIG does not reach them).
  ::syscall(SYS_pidfd_send_signal, slot.pidfd.get(), SIGKILL, nullptr, 0);
  ::kill(-slot.pid, SIGKILL);
  if (slot.state == State::kReady) slot.state = State::kDraining;  // no new tasks meanwhile
}

void PoolCore::reap(WorkerSlot& slot) {
  int status = 0;
  const pid_t reaped = ::waitpid(slot.pid, &status, WNOHANG);
  if (reaped == 0) return;  // pidfd readable means exited; be safe anyway
  // The worker is gone: what is left in its pipe is its last words (at most the pipe's size,
  // unless a child of it still writes; hence the bound).
  read_stderr_locked(slot, 1024 * 1024);
  ::kill(-slot.pid, SIGKILL);  // the worker's own children, if any, before its pgid is free
  ::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_DEL, slot.pidfd.get(), nullptr);
  ::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_DEL, slot.stderr_fd.get(), nullptr);
  ::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_DEL, slot.doorbell_fd.get(), nullptr);
  slot.pidfd.reset();
  slot.stderr_fd.reset();
  slot.doorbell_fd.reset();
  on_exit_locked(slot, reaped == slot.pid ? status : 0);
}

// Reads at most `budget` bytes of what the worker wrote to stderr (the pipe is level-triggered
// in epoll: the rest wakes the supervisor thread again), so a worker flooding its stderr cannot
// keep this thread, and the pool's mutex, to itself. Forwarding is best effort: bytes are
// dropped, not waited for, when our own stderr is a pipe nobody drains (a blocked write here
// would stop the whole pool); the crash report's tail keeps them either way.
void PoolCore::read_stderr_locked(WorkerSlot& slot, std::size_t budget) {
  if (!slot.stderr_fd) return;
  char buffer[4096];  // PIPE_BUF: a write of this size to a pipe with POLLOUT never blocks
  for (std::size_t taken = 0; taken < budget;) {
    const ssize_t n = ::read(slot.stderr_fd.get(), buffer, sizeof buffer);
    if (n <= 0) break;
    taken += static_cast<std::size_t>(n);
    const std::string_view bytes(buffer, static_cast<std::size_t>(n));
    slot.stderr_tail.append(bytes);
    if (options_.forward_stderr) {
      pollfd out{STDERR_FILENO, POLLOUT, 0};
      if (::poll(&out, 1, 0) == 1 && (out.revents & POLLOUT) != 0) {
        // A pipe whose reader is gone: EPIPE, never SIGPIPE in the host.
        write_stderr_quietly(buffer, static_cast<std::size_t>(n));
      }
    }
  }
}

// A worker's doorbell rang. The SDK rings it only after a publish or a release the supervisor
// waits for, each of at least one frame's record: so a worker rings at most once per
// kMinFrameRecord bytes of ring traffic (results published, task bytes handed back), plus
// slack. More is a wake-up flood (docs/design-rules.md §18), and the worker is killed for it; its
// ring is drained first, so what it published counts.
void PoolCore::doorbell_locked(WorkerSlot& slot) {
  constexpr std::uint64_t kMinFrameRecord = ring_record_footprint(sizeof(FrameHeader));
  constexpr std::uint64_t kDoorbellSlack = 1024;
  eventfd_t rings = 0;
  if (!slot.doorbell_fd || ::eventfd_read(slot.doorbell_fd.get(), &rings) != 0) return;
  slot.doorbell_rings += std::min<std::uint64_t>(rings, ~std::uint64_t{0} - slot.doorbell_rings);
  if (!slot.live() || !slot.reader || !slot.writer || slot.killed) return;
  drain_slot_locked(slot);
  if (slot.killed) return;
  if (!slot.writer->check_read_position()) {
    kill_locked(slot, "protocol violation: " + std::string(to_string(slot.writer->fault())),
                KillCause::kProtocolViolation);
    return;
  }
  const std::uint64_t traffic = slot.reader->position() + slot.writer->read_position();
  if (slot.doorbell_rings > traffic / kMinFrameRecord + kDoorbellSlack) {
    kill_locked(slot,
                "protocol violation: doorbell flood (" + std::to_string(slot.doorbell_rings) +
                    " rings for " + std::to_string(traffic) + " bytes of ring traffic)",
                KillCause::kProtocolViolation);
  }
}

std::string PoolCore::handler_name_locked(std::uint32_t handler) const {
  return handler < handler_names_.size() ? handler_names_[handler] : "#" + std::to_string(handler);
}

std::string PoolCore::describe_slot(const WorkerSlot& slot) const {
  return "worker " + std::to_string(slot.index) + " (pid " + std::to_string(slot.pid) + ")";
}

void PoolCore::on_exit_locked(WorkerSlot& slot, int wait_status) {
  const auto now = Clock::now();
  const ExitStatus exit = ExitStatus::from_wait_status(wait_status);
  const bool intended = slot.state == State::kStopping && !slot.killed && exit.clean();
  const bool was_ready = slot.ready_at >= slot.started && slot.state != State::kStarting;
  const int pid = slot.pid;
  const bool busy = !slot.inflight.empty();
  const TaskRecord* running = charged_task_locked(slot);
  // The crash report: what ended it, how long it had been up, what it was doing, its last words.
  char uptime[32];
  std::snprintf(uptime, sizeof uptime, "%.3f s", seconds_between(slot.started, now));
  std::string what = describe_slot(slot) +
                     (slot.killed ? " was killed: " + slot.kill_reason : " " + exit.describe());
  what += std::string(", up ") + uptime;
  if (running != nullptr) {
    what += ", running a \"" + handler_name_locked(running->handler) + "\" task (attempt " +
            std::to_string(running->attempts) + " of " + std::to_string(running->max_attempts) +
            ")";
  } else if (busy) {
    what += ", " + std::to_string(slot.inflight.size()) + " task(s) on board, none running";
  }
  if (!slot.stderr_tail.empty()) what += "; last stderr lines:\n" + slot.stderr_tail.text();

  // Tasks on board: answers published before the exit were drained already. The one task that
  // was running spent an attempt. The rest never started, or finished with the answer
  // unpublished: they go back to the front of the queue as they were.
  std::vector<std::uint32_t> requeue;
  for (const std::uint32_t index : slot.inflight) {
    TaskRecord& task = tasks_[index];
    if (task.abandoned) {
      free_task_locked(index);
      continue;
    }
    --running_;
    task.slot = -1;
    task.began = Clock::time_point{};
    if (terminating_) {  // Pool::terminate(): nothing is retried
      resolve_locked(index, {},
                     TaskError(TaskError::Kind::ShuttingDown, "pool terminated: " + what, pid));
      free_task_locked(index);
      continue;
    }
    const bool timed_out = slot.timed_out_task == index;
    const bool charged = !intended && &task == running;
    if (charged) {
      if (task.attempts >= task.max_attempts) {
        const auto kind = timed_out              ? TaskError::Kind::Timeout
                          : slot.memory_exceeded ? TaskError::Kind::MemoryLimit
                                                 : TaskError::Kind::WorkerCrashed;
        std::string message = what;
        if (task.max_attempts > 1) {
          message = "task failed on all " + std::to_string(task.attempts) +
                    " attempts (poison); last: " + what;
        }
        resolve_locked(index, {}, TaskError(kind, message, pid));
        free_task_locked(index);
        continue;
      }
      requeue.push_back(index);  // retried: this attempt is spent
      continue;
    }
    if (!task.payload_stored) {  // sent without a kept copy (large, max_attempts 1)
      resolve_locked(index, {},
                     TaskError(TaskError::Kind::WorkerCrashed,
                               "the worker died before starting the task, and its payload was not "
                               "kept for a retry (max_attempts 1): " +
                                   what,
                               pid));
      free_task_locked(index);
      continue;
    }
    --task.attempts;  // never started: this dispatch does not count
    ++task.uncharged_deaths;
    requeue.push_back(index);
  }
  for (auto it = requeue.rbegin(); it != requeue.rend(); ++it) {
    queue_.push_front(tasks_[*it].priority, *it);
  }
  slot.inflight.clear();
  slot.partial_task = WorkerSlot::kNoTask;
  slot.assembling = false;
  slot.reader.reset();
  slot.writer.reset();
  slot.segment.reset();
  slot.pid = -1;

  // What the death says about the program (RestartTracker): only a start that never served
  // counts towards a crash loop.
  DeathKind death = DeathKind::kBroken;
  if (intended || (slot.killed && (slot.kill_cause == KillCause::kForTask ||
                                   slot.kill_cause == KillCause::kStop))) {
    death = DeathKind::kIntended;
  } else if (!was_ready) {
    death = DeathKind::kBroken;
  } else if (now - slot.ready_at >= options_.restart.min_uptime) {
    death = DeathKind::kStable;
  } else if (busy || slot.last_answered_id != 0 ||
             (!slot.killed && exit.signaled && exit.signal == SIGKILL)) {
    // With tasks on board the running one is charged. A worker that answered a task has shown
    // the program can serve (a protocol violation in an answer is that task's). An idle worker
    // SIGKILLed from outside (an operator, a chaos test) says nothing about the program. All
    // restart at once.
    death = DeathKind::kBusy;
  }
  PoolEvent exited;
  exited.kind = PoolEvent::Kind::WorkerExited;
  exited.pid = pid;
  exited.message = what;
  exited.exit_code = exit.signaled ? -1 : exit.code;
  exited.signal = exit.signaled ? exit.signal : 0;
  exited.counted = death == DeathKind::kBroken;
  emit_locked(slot, std::move(exited));

  if (intended) {
    // Recycled or scaled down: a recycled slot below the minimum comes back at once.
    slot.state = State::kEmpty;
    slot.restart.on_death(DeathKind::kIntended, 0);
    return;
  }
  if (failure_ || (stopping_ && (queue_.empty() || now >= shutdown_deadline_))) {
    slot.state = State::kEmpty;  // shutting down: no restart unless queued work still needs one
    return;
  }
  ++restarts_;
  ++slot.restarts;
  schedule_restart_locked(slot, death, what, now);
}

// Puts the slot in backoff after a death or a failed spawn: at once unless the death shows the
// program is broken, else after the tracker's jittered backoff. Reports a crash loop, and gives
// up (fails the pool) only if RestartPolicy::give_up_after asks for it, or while the pool is
// still starting (the constructor throws rather than retry for its caller).
void PoolCore::schedule_restart_locked(WorkerSlot& slot, DeathKind death, const std::string& what,
                                       Clock::time_point now) {
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  const auto delay = slot.restart.on_death(death, uniform(rng_));
  const auto failures = static_cast<unsigned>(slot.restart.broken_in_a_row());
  if (death == DeathKind::kBroken && slot.restart.crash_looping() && !slot.crash_loop_reported) {
    slot.crash_loop_reported = true;
    PoolEvent loop;
    loop.kind = PoolEvent::Kind::CrashLoop;
    loop.message = what;
    loop.consecutive_failures = failures;
    emit_locked(slot, std::move(loop));
  }
  if (failures == 0) slot.crash_loop_reported = false;
  const std::string in_a_row = " (" + std::to_string(failures) + " failures in a row)";
  if (slot.restart.gave_up()) {
    slot.state = State::kEmpty;
    fail_pool_locked(what + in_a_row);
    return;
  }
  if (!started_up_ && slot.restart.crash_looping()) {
    slot.state = State::kEmpty;
    fail_pool_locked(what + in_a_row);
    return;
  }
  PoolEvent restarting;
  restarting.kind = PoolEvent::Kind::WorkerRestarting;
  restarting.delay = delay;
  restarting.consecutive_failures = failures;
  emit_locked(slot, std::move(restarting));
  slot.state = State::kBackoff;
  slot.deadline = now + delay;
}

// The task on board that the death is charged to, if any. Normally the one whose handler was
// running, as the worker said (untrusted: only compared with our own ids), or the one we killed
// it for. When that report cannot be trusted (the worker scribbled its control block, or names
// a task that is neither on board nor the one it last answered), or names nothing while only
// one task was on board of a worker that died by itself, the oldest task on board, the one the
// worker serves first, is charged: otherwise a task that makes every worker it reaches scribble
// or die would go from worker to worker for free, forever. A task that saw kMaxUnchargedDeaths
// workers die under it uncharged is charged too, for the same reason (a rogue that breaks the
// protocol between tasks). A protocol violation alone does not make the report a lie: the task
// behind a malformed or duplicate answer is innocent.
const PoolCore::TaskRecord* PoolCore::charged_task_locked(const WorkerSlot& slot) const {
  const std::uint64_t running_id =
      slot.segment ? slot.segment->control().current_task_id.load(std::memory_order_relaxed) : 0;
  const TaskRecord* oldest = nullptr;
  std::size_t live = 0;
  bool named = false;
  for (const std::uint32_t index : slot.inflight) {
    const TaskRecord& task = tasks_[index];
    if (slot.timed_out_task == index) return &task;
    if (running_id != 0 && task.id == running_id) {
      named = true;
      if (slot.timed_out_task == WorkerSlot::kNoTask && !task.abandoned) return &task;
    }
    if (task.abandoned) continue;
    ++live;
    if (oldest == nullptr) oldest = &task;
  }
  if (slot.timed_out_task != WorkerSlot::kNoTask || oldest == nullptr) return nullptr;
  // The last task it answered may still be named if it died before clearing the field: a
  // stale report, not a lie.
  const bool untrusted =
      slot.control_lied || (running_id != 0 && !named && running_id != slot.last_answered_id);
  // A lone task on a worker that died by itself: nothing else on board can have done it. (Not
  // for a worker we killed as hung: with no task named running, it hung outside any task.)
  if (untrusted || (running_id == 0 && live == 1 && !slot.killed)) return oldest;
  if (slot.killed && slot.kill_cause != KillCause::kUnhealthy) return nullptr;  // killed for a task
  if (oldest->uncharged_deaths + 1 >= kMaxUnchargedDeaths) return oldest;
  return nullptr;
}

void PoolCore::fail_pool_locked(std::string message) {
  if (failure_) return;
  failure_ = std::move(message);
  accepting_ = false;
  stopping_ = true;
  shutdown_deadline_ = Clock::now();
  queue_.drain([&](std::uint32_t index) {
    resolve_locked(index, {},
                   TaskError(TaskError::Kind::WorkerCrashed, "pool failed: " + *failure_));
    free_task_locked(index);
  });
  changed_.notify_all();
}

std::size_t PoolCore::live_slots_locked() const {
  std::size_t live = 0;
  for (const WorkerSlot& slot : slots_) live += slot.live();
  return live;
}

void PoolCore::stop_slot_locked(WorkerSlot& slot, Clock::time_point now) {
  send_frame_locked(slot, FrameType::kShutdown, 0);
  slot.state = State::kStopping;
  slot.deadline = now + options_.stop_grace;
}

// The deadlines of one worker's tasks on board: a running task past its timeout gets the worker
// killed; one past its timeout while still waiting in the worker's pipeline is resolved and
// skipped; a cancelled task still running after cancel_grace gets the worker killed. Sets
// slot.next_scan to the next deadline.
void PoolCore::scan_deadlines_locked(WorkerSlot& slot, Clock::time_point now) {
  auto want = [&](Clock::time_point t) { slot.next_scan = std::min(slot.next_scan, t); };
  // The task whose handler runs now, as the worker says (untrusted: only compared).
  const std::uint64_t running_id =
      slot.segment->control().current_task_id.load(std::memory_order_relaxed);
  for (const std::uint32_t index : slot.inflight) {
    TaskRecord& task = tasks_[index];
    const bool running = running_id != 0 && task.id == running_id;
    if (task.abandoned) {
      if (task.abandon_deadline == Clock::time_point::max()) continue;  // skipped, not run
      if (running && now >= task.abandon_deadline) {
        kill_locked(
            slot, "cancelled task " + std::to_string(task.id) + " still running after cancel_grace",
            KillCause::kForTask);
        return;
      }
      // Not running yet (the worker will skip it) or not due: look again at the deadline, or
      // a heartbeat later if it may still start.
      want(now < task.abandon_deadline ? task.abandon_deadline : now + options_.heartbeat_interval);
      continue;
    }
    // Timeouts count from the start: a task still waiting behind another in the worker's
    // pipeline has not started, and its timeout is armed when it reaches the head.
    if (task.timeout.count() == 0 || task.began == Clock::time_point{}) continue;
    const auto expires = task.began + task.timeout;
    if (now < expires) {
      want(expires);
      continue;
    }
    if (running) {
      slot.timed_out_task = index;
      kill_locked(
          slot,
          "task " + std::to_string(task.id) + " timed out after " + milliseconds_text(task.timeout),
          KillCause::kForTask);
      return;
    }
    // Timed out while still waiting in the worker's queue: resolve it now, and tell the worker
    // to skip it.
    resolve_locked(index, {},
                   TaskError(TaskError::Kind::Timeout,
                             "task timed out after " + milliseconds_text(task.timeout) +
                                 " waiting in " + describe_slot(slot),
                             slot.pid));
    task.abandoned = true;
    task.abandon_deadline = Clock::time_point::max();
    --running_;
    send_frame_locked(slot, FrameType::kCancel, task.id);
  }
}

// Memory limits (PoolOptions::max_rss, max_rss_hard), from the worker's resident set size.
void PoolCore::check_memory_locked(WorkerSlot& slot) {
  const std::uint64_t rss = read_process_usage(slot.pid).rss_bytes;
  if (rss == 0) return;  // exiting, or /proc unreadable
  if (options_.max_rss_hard != 0 && rss > options_.max_rss_hard) {
    slot.memory_exceeded = true;
    kill_locked(slot,
                "resident memory " + mebibytes_text(rss) + " above max_rss_hard " +
                    mebibytes_text(options_.max_rss_hard),
                KillCause::kForTask);
    return;
  }
  if (options_.max_rss != 0 && rss > options_.max_rss && slot.state == State::kReady) {
    slot.state = State::kDraining;  // recycled once the tasks on board are answered
    kick();
  }
}

// Deadlines: start-up, heartbeats, task timeouts, cancel grace, restarts, stops, idle workers,
// shutdown. Returns when it next needs to run.
Clock::time_point PoolCore::timers_locked(Clock::time_point now) {
  Clock::time_point next = now + options_.heartbeat_interval;
  auto soon = [&](Clock::time_point t) { next = std::min(next, t); };
  const auto now_ms = static_cast<std::uint64_t>(
      std::chrono::duration_cast<milliseconds>(now.time_since_epoch()).count());
  const auto hung_after = options_.heartbeat_interval * options_.heartbeat_misses;

  if (stopping_ && now >= shutdown_deadline_) {
    // Grace over: what is still queued fails; what is running is cut off by the stops below.
    queue_.drain([&](std::uint32_t index) {
      resolve_locked(index, {},
                     TaskError(TaskError::Kind::ShuttingDown,
                               failure_ ? "pool failed: " + *failure_
                                        : "pool shut down before the task could run"));
      free_task_locked(index);
    });
  }

  for (WorkerSlot& slot : slots_) {
    switch (slot.state) {
      case State::kEmpty:
        break;
      case State::kBackoff:
        if (failure_ || (stopping_ && (queue_.empty() || now >= shutdown_deadline_))) {
          slot.state = State::kEmpty;
        } else if (now >= slot.deadline) {
          spawn_locked(slot);
        } else {
          soon(slot.deadline);
        }
        break;
      case State::kStarting:
        if (now >= slot.deadline) {
          kill_locked(slot,
                      "did not become READY within " + milliseconds_text(options_.startup_timeout),
                      KillCause::kUnhealthy);
        } else {
          soon(slot.deadline);
        }
        break;
      case State::kStopping:
        if (now >= slot.deadline && !slot.killed) {
          kill_locked(slot,
                      "did not exit within stop_grace " + milliseconds_text(options_.stop_grace),
                      KillCause::kStop);
        } else {
          soon(slot.deadline);
        }
        break;
      case State::kReady:
      case State::kDraining: {
        if (slot.killed) break;
        slot.restart.on_alive(now);
        if (slot.restart.broken_in_a_row() != 0) soon(slot.ready_at + options_.restart.min_uptime);
        const std::uint64_t beat =
            slot.segment->control().heartbeat_ms.load(std::memory_order_relaxed);
        // Worker-written, so checked (docs/design-rules.md §17): a heartbeat from before the worker
        // started, or from the future (which would blind the hang check), is a lie.
        const auto started_ms = static_cast<std::uint64_t>(
            std::chrono::duration_cast<milliseconds>(slot.started.time_since_epoch()).count());
        const auto future_slack =
            static_cast<std::uint64_t>((hung_after + std::chrono::seconds(1)).count());
        if (beat < started_ms || beat > now_ms + future_slack) {
          slot.control_lied = true;
          kill_locked(slot,
                      std::string("protocol violation: heartbeat ") +
                          (beat < started_ms ? "from before the worker started" : "in the future") +
                          " (" + std::to_string(beat) + " ms; now " + std::to_string(now_ms) +
                          " ms)",
                      KillCause::kProtocolViolation);
          break;
        }
        if (now_ms > beat && milliseconds(now_ms - beat) > hung_after) {
          kill_locked(slot,
                      "no heartbeat for " + milliseconds_text(milliseconds(now_ms - beat)) +
                          " (hung or stopped)",
                      KillCause::kUnhealthy);
          break;
        }
        if (memory_watched() && now >= slot.next_memory_check) {
          slot.next_memory_check = now + options_.heartbeat_interval;
          check_memory_locked(slot);
          if (slot.killed) break;
        }
        if (memory_watched()) soon(slot.next_memory_check);
        // Deadlines of the tasks on board (timeouts, cancel grace): scanned only when one is
        // due, so a deep pipeline costs nothing per loop. Dispatch and cancel pull next_scan in.
        if (now >= slot.next_scan) {
          slot.next_scan = Clock::time_point::max();
          scan_deadlines_locked(slot, now);
          if (slot.killed) break;
        }
        soon(slot.next_scan);
        if (slot.killed) break;
        if (slot.state == State::kDraining && slot.inflight.empty()) {
          stop_slot_locked(slot, now);
        } else if (stopping_ && slot.inflight.empty() && queue_.empty()) {
          stop_slot_locked(slot, now);
        } else if (stopping_ && now >= shutdown_deadline_) {
          stop_slot_locked(slot, now);  // grace over: the worker finishes its current task
        }
        break;
      }
    }
  }
  if (stopping_ && !failure_) soon(shutdown_deadline_);
  return next;
}

// Tasks are waiting inside a worker's pipeline behind one that has run for a while: work the
// queue does not show, which a burst dispatched straight into the rings leaves.
bool PoolCore::backlogged_locked(const WorkerSlot& slot, Clock::time_point now) const noexcept {
  if (slot.state != State::kReady || slot.inflight.size() < 2) return false;
  const Clock::time_point began = tasks_[slot.inflight.front()].began;
  return began != Clock::time_point{} && now - began >= kPipelineWork;
}

// Scale between min_workers and max_workers: up while tasks wait, in the queue or behind a busy
// worker's running task (at most one start per spawn_interval), down after idle_timeout; refill
// slots emptied by recycling. Returns when it next wants to run.
Clock::time_point PoolCore::autoscale_locked(Clock::time_point now) {
  if (stopping_) return Clock::time_point::max();
  // `serving`: workers that are or will be taking tasks (a stopping or draining one is on its way
  // out and does not count towards min_workers). `processes`: every slot with a process or a
  // pending restart, bounded by max_workers.
  std::size_t serving = 0, processes = 0;
  bool backlog = false, idle_worker = false;
  for (const WorkerSlot& slot : slots_) {
    const bool pending_restart = slot.state == State::kBackoff;
    serving += slot.state == State::kStarting || slot.state == State::kReady || pending_restart;
    processes += slot.live() || pending_restart;
    backlog = backlog || backlogged_locked(slot, now);
    idle_worker = idle_worker || (slot.state == State::kReady && slot.inflight.empty());
  }
  // A backlog inside one worker's ring cannot move to another, but the next tasks can: worth a
  // new worker only if none is idle.
  const bool waiting = !queue_.empty() || (backlog && !idle_worker);
  Clock::time_point next = Clock::time_point::max();
  for (WorkerSlot& slot : slots_) {
    if (slot.state != State::kEmpty) continue;
    const bool below_min = serving < min_workers_;
    const bool wanted = waiting && processes < max_workers_;
    if (!below_min && !wanted) break;
    if (!below_min && now - last_spawn_ < options_.spawn_interval) {
      next = last_spawn_ + options_.spawn_interval;  // the loop must wake for it
      break;
    }
    spawn_locked(slot);
    if (failure_) return next;
    ++serving;
    ++processes;
  }
  if (waiting && processes < max_workers_ && next == Clock::time_point::max()) {
    next = std::max(now, last_spawn_ + options_.spawn_interval);
  }
  for (WorkerSlot& slot : slots_) {
    if (serving <= min_workers_) break;
    if (slot.state == State::kReady && slot.inflight.empty() && queue_.empty() &&
        now - slot.last_active >= options_.idle_timeout) {
      stop_slot_locked(slot, now);
      --serving;
    }
  }
  return next;
}

// ---------------------------------------------------------------------------------------------
// Introspection

PoolMetrics PoolCore::metrics() const {
  std::lock_guard lock(mu_);
  PoolMetrics m;
  m.state = failure_ ? "failed" : stopped_ ? "stopped" : stopping_ ? "shutting_down" : "running";
  const auto now = Clock::now();
  const double unix_s = unix_now_s();
  for (const WorkerSlot& slot : slots_) {
    if (slot.state == State::kEmpty) continue;
    WorkerMetrics w;
    w.slot = slot.index;
    w.incarnation = slot.incarnation;
    w.pid = slot.live() ? slot.pid : 0;
    w.state = slot.state_name();
    w.started_unix_s = slot.started_unix_s;
    w.uptime_s = slot.live() ? seconds_between(slot.started, now) : 0;
    w.idle_s = seconds_between(slot.last_active, now);
    w.tasks_done = slot.tasks_done;
    w.tasks_failed = slot.tasks_failed;
    w.slot_tasks_done = slot.slot_tasks_done;
    w.slot_tasks_failed = slot.slot_tasks_failed;
    w.last_active_unix_s = unix_s - seconds_between(slot.last_active, now);
    w.consecutive_failures = static_cast<unsigned>(slot.restart.broken_in_a_row());
    w.inflight = static_cast<unsigned>(slot.inflight.size());
    w.pipeline_depth = options_.pipeline_depth != 0 ? options_.pipeline_depth : slot.depth;
    w.restarts = slot.restarts;
    if (w.pid > 0) {
      const ProcessUsage usage = read_process_usage(w.pid);
      w.rss_bytes = usage.rss_bytes;
      w.cpu_s = usage.cpu_s;
    }
    m.workers.push_back(std::move(w));
  }
  m.queued = queue_.size();
  m.running = running_;
  m.completed = completed_;
  m.failed = failed_;
  m.retried = retried_;
  m.restarts = restarts_;
  m.queue_wait = queue_wait_.summary();
  m.run_time = run_time_.summary();
  return m;
}

std::vector<std::string> PoolCore::handlers() const {
  std::lock_guard lock(mu_);
  return handler_names_;
}

}  // namespace procpool::detail
