#include "pool_core.hpp"

#include <algorithm>  // std::max
#include <limits>     // std::numeric_limits
#include <memory>     // std::shared_ptr

#include "callback_scope.hpp"
#include "coalescing.hpp"
#include "procpool/chunk_format.hpp"
#include "spin_acquire.hpp"
#include "worker_error_kind.hpp"

namespace procpool::detail {
std::uint32_t PoolCore::new_task_locked(std::uint32_t handler_id, const TaskOptions& options,
                                        Completion completion, Clock::time_point now) {
  const std::uint32_t index = tasks_.allocate();
  TaskRecord& task = tasks_[index];
  task.handler = handler_id;
  task.priority = options.priority;
  task.attempts = 0;
  task.max_attempts = options.max_attempts != 0 ? options.max_attempts : options_.max_attempts;
  task.timeout = options.timeout;
  task.chunk_items = 0;
  task.submitted = now;
  task.slot = -1;
  task.abandoned = false;
  task.began = Clock::time_point{};
  task.uncharged_deaths = 0;
  task.coalescable = false;
  task.completion = std::move(completion);
  task.members.clear();
  task.progress =
      options.on_progress ? std::make_shared<ProgressStream>(options.on_progress) : nullptr;
  return index;
}

// Payloads of at least this size that need no retry go from the caller's buffer straight into
// a free worker's ring, without a copy kept in the pool (the large-payload path: one copy end
// to end). If that worker dies before starting the task, the task fails rather than being
// dispatched again: set max_attempts >= 2 to keep a copy and have it re-dispatched.
constexpr std::size_t kDirectPayloadMin = 64 * 1024;

std::uint32_t PoolCore::submit_locked(std::uint32_t handler_id, std::string_view payload,
                                      const TaskOptions& options, Completion completion,
                                      Clock::time_point now) {
  const std::uint32_t index = new_task_locked(handler_id, options, std::move(completion), now);
  TaskRecord& task = tasks_[index];
  if (payload.size() >= kDirectPayloadMin && task.max_attempts == 1 && queue_.empty()) {
    if (WorkerSlot* slot = pick_slot_locked(task.submitted)) {
      task.payload.clear();
      task.payload_stored = false;
      start_dispatch_locked(*slot, index, task.submitted);
      if (!write_task_locked(*slot, &payload) && slot->writing_task() == index) {
        // Only part of it fits now: keep it all, the rest is written as the worker makes room.
        tasks_.store_payload(index, payload);
        tasks_[index].payload_stored = true;
      }
      return index;
    }
  }
  tasks_.store_payload(index, payload);
  task.payload_stored = true;
  // A cancel source, a timeout or a progress listener needs the task's own record on board (its
  // id, its own deadline, its own frames): those go alone.
  task.coalescable = payload.size() <= kCoalescedPayloadMax && !options.cancel &&
                     task.timeout.count() == 0 && !task.progress;
  queue_.push(task.priority, index);
  return index;
}

void PoolCore::submit(std::string_view handler, std::string_view payload,
                      const TaskOptions& options, Completion completion) {
  auto lock = spin_locked(mu_);
  std::uint32_t handler_id = 0;
  if (admit_locked(lock, handler, payload, options, completion, handler_id)) {
    // Answers that are in go out with this call (deliver() below), not through another thread.
    caller_turn_locked();
    drain_all_locked();
    const auto now = Clock::now();
    const std::uint64_t id =
        tasks_[submit_locked(handler_id, payload, options, std::move(completion), now)].id;
    dispatch_locked(now);
    publish_all_locked();
    if (options.cancel && !options.cancel->attach(weak_from_this(), id)) cancel_locked(id);
    if (!queue_.empty() && live_slots_locked() < max_workers_) kick();  // may scale up
  }
  deliver(lock);
}

Future<std::string> PoolCore::submit_future(std::string_view handler, std::string_view payload,
                                            const TaskOptions& options) {
  auto state = std::make_shared<FutureState<std::string>>();
  submit(handler, payload, options, Completion([state](const TaskOutcome& outcome) {
           // Always marks the state done: a waiter must not wait forever.
           try {
             if (outcome.ok()) {
               state->value.emplace(outcome.value());
             } else {
               state->error.emplace(*outcome.error());
             }
           } catch (...) {
             state->exception = std::current_exception();
           }
           state->complete();  // may run a then() continuation: deliver() catches its throw
         }));
  return make_future(std::move(state), std::shared_ptr<FutureWaiter>(shared_from_this()));
}

void PoolCore::submit_batch(std::string_view handler, std::span<const std::string_view> payloads,
                            const TaskOptions& options, BatchCallback& batch) {
  // One reference per task, taken at once; those of tasks never created (a throw midway) go
  // back at the end.
  batch.retain(payloads.size());
  std::size_t made = 0;
  struct Unmade {
    BatchCallback& batch;
    std::size_t count;
    std::size_t& made;
    ~Unmade() {
      if (made < count) batch.release(count - made);
    }
  } unmade{batch, payloads.size(), made};
  auto lock = spin_locked(mu_);
  caller_turn_locked();
  drain_all_locked();
  // What admit_locked checks for the whole batch (the pool's state, the handler) is checked
  // once; each task then only needs its size and queue room checked, and anything unusual (or a
  // wait for room, after which the pool may be stopping) goes through admit_locked itself.
  std::uint32_t batch_handler = 0;
  bool plain = !failure_ && accepting_;
  if (plain) {
    const std::optional<std::uint32_t> id = handlers_.find(handler);
    plain = id.has_value();
    if (id) batch_handler = *id;
  }
  // One clock reading per run of tasks (dispatch_locked reads it anyway): their queue waits are
  // measured from it.
  auto now = Clock::now();
  for (std::size_t i = 0; i < payloads.size(); ++i) {
    Completion completion(BatchItem(&batch, i));
    ++made;
    std::uint32_t handler_id = batch_handler;
    const bool admitted = (plain && accepting_ && payloads[i].size() <= options_.max_payload &&
                           (options_.max_queue == 0 || queue_.size() < options_.max_queue)) ||
                          admit_locked(lock, handler, payloads[i], options, completion, handler_id);
    if (!admitted) continue;
    const std::uint32_t index =
        submit_locked(handler_id, payloads[i], options, std::move(completion), now);
    if (tasks_[index].progress) tasks_[index].progress->set_index(i);
    if (options.cancel && !options.cancel->attach(weak_from_this(), tasks_[index].id)) {
      cancel_locked(tasks_[index].id);
    }
    // Keep the workers busy while the batch is still being queued, and hand their answers out
    // as they come: a long batch otherwise holds mu_ (so the supervisor thread off the rings)
    // until its end, and its first answers wait for its last submission.
    if ((i & 63) == 63) {
      now = Clock::now();
      drain_all_locked();
      dispatch_locked(now);
      publish_all_locked();
      if ((i & 1023) == 1023 && !deliveries_.empty()) {
        deliver(lock);  // mu_ released meanwhile: what was checked once is checked again
        caller_turn_locked();
        plain = plain && !failure_ && accepting_;
        now = Clock::now();
      }
    }
  }
  dispatch_locked(Clock::now());
  publish_all_locked();
  if (!queue_.empty() && live_slots_locked() < max_workers_) kick();
  deliver(lock);
}

namespace {

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
          const TaskError error = item_error(code, bytes, outcome.worker_pid());
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
    const std::uint32_t index =
        new_task_locked(handler_id, options, std::move(completion), Clock::now());
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

void PoolCore::free_task_locked(std::uint32_t index) {
  tasks_[index].progress.reset();
  tasks_.free(index);
  if (running_ == 0 && queue_.empty()) changed_.notify_all();  // idle
}

}  // namespace procpool::detail
