#include "pool_core.hpp"

#include <algorithm>  // std::min

#include "callback_scope.hpp"
#include "procpool/chunk_format.hpp"
#include "procpool/wait_strategy.hpp"
#include "spin_acquire.hpp"
#include "worker_error_kind.hpp"

namespace procpool::detail {
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
  if (task.progress) {  // after the progress already pushed, never before it
    task.progress->push_outcome(std::move(task.completion), std::move(value), std::move(error),
                                pid);
    deliveries_.push_back(Delivery{{}, {}, std::nullopt, pid, {}, std::move(task.progress)});
    return;
  }
  deliveries_.push_back(
      Delivery{std::move(task.completion), std::move(value), std::move(error), pid, {}});
  if (!task.members.empty()) deliveries_.back().members.swap(task.members);
}

namespace {

// A carrier's resolution (coalescing.cpp), to each member in chunk order: its own result or
// error from the chunk answer (checked whole by check_chunk_results), or the error that ended
// the frame. A member callback that throws is reported and counted; the others still run.
void fan_out(std::vector<Completion>& members, std::string_view value,
             const std::optional<TaskError>& error, int pid) {
  auto call = [&](Completion& member, const TaskOutcome& outcome) {
    try {
      member(outcome);
    } catch (...) {
      callback_threw("a completion callback", -1, pid);
    }
  };
  if (error) {
    for (Completion& member : members) call(member, TaskOutcome({}, &*error, pid));
    return;
  }
  ChunkReader reader(value);
  std::uint32_t code = 0;
  std::size_t k = 0;
  for (std::string_view bytes; k < members.size() && reader.next_result(code, bytes); ++k) {
    if (code == 0) {
      call(members[k], TaskOutcome(bytes, nullptr, pid));
    } else {
      const TaskError failure = item_error(code, bytes, pid);
      call(members[k], TaskOutcome({}, &failure, pid));
    }
  }
}

}  // namespace

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
    if (d.stream) {
      if (d.stream->run()) kick();  // its worker's ring was held: have it read again
      d.stream.reset();
      continue;
    }
    if (!d.members.empty()) {
      fan_out(d.members, d.value, d.error, d.pid);
      continue;
    }
    try {
      d.completion(TaskOutcome(d.value, d.error ? &*d.error : nullptr, d.pid));
    } catch (...) {
      callback_threw("a completion callback", -1, d.pid);
    }
  }
  const std::size_t delivered = batch.size();
  batch.clear();
  tls_callbacks = scope.outer;
  spin_acquire(lock);
  callback_errors_ += scope.errors;
  --callers_inside_;
  spare_batches_.push_back(std::move(batch));
  in_delivery_ -= delivered;
  if ((in_delivery_ == 0 && running_ == 0 && queue_.empty()) ||
      (callers_inside_ == 0 && stopped_)) {
    changed_.notify_all();
  }
}

bool PoolCore::await(FutureSignal& signal,
                     std::optional<std::chrono::steady_clock::time_point> deadline) {
  if (signal.is_set()) return true;
  check_owner();  // the child's copy of the rings is the parent's
  // A progress callback that waits here lifts its stream's hold on its worker's ring
  // (progress_stream.hpp): have the supervisor thread look again.
  const ProgressStream::WaitingInCallback waiting;
  if (on_supervisor_thread()) return drive_until(signal, deadline);
  if (waiting.any()) kick();
  bool spin = true;
  {
    auto lock = spin_locked(mu_);
    spin = answers_soon_locked();
  }
  // A long task: sleep at once. The supervisor thread is announcing and draining already (no
  // poller keeps it from that; the last one to leave kicked it), so no kick either.
  if (!spin) return signal.wait_until(deadline);
  pollers_.fetch_add(1, std::memory_order_acq_rel);
  auto spin_until = Clock::now() + WaitPolicy::kDefaultSpin;
  if (deadline && *deadline < spin_until) spin_until = *deadline;
  for (std::uint32_t i = 0; !signal.is_set(); ++i) {
    if ((i & 3) == 0) {
      std::unique_lock lock(mu_, std::try_to_lock);
      if (lock.owns_lock()) {
        caller_turn_locked();
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
  if (signal.is_set()) return true;
  kick();  // the supervisor thread takes over the announcing and the draining
  return signal.wait_until(deadline);
}

bool PoolCore::drive_until(FutureSignal& signal,
                           std::optional<std::chrono::steady_clock::time_point> deadline) {
  for (;;) {
    {
      auto lock = spin_locked(mu_);
      drain_all_locked();
      dispatch_locked();
      publish_all_locked();
      deliver(lock);
    }
    const auto now = Clock::now();
    if (signal.is_set()) return true;
    if (deadline && now >= *deadline) return false;
    const auto until = deadline ? std::min(*deadline, now + std::chrono::milliseconds(1))
                                : now + std::chrono::milliseconds(1);
    if (signal.wait_until(until)) return true;
  }
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
    caller_turn_locked();
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

}  // namespace procpool::detail
