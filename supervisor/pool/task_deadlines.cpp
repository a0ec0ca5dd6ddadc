#include "pool_core.hpp"

#include <algorithm>  // std::min
#include <string>     // messages

#include "report_text.hpp"

namespace procpool::detail {
void PoolCore::cancel(std::uint64_t task_id) {
  check_owner();  // CancelSource reaches the core without Pool's checks
  std::unique_lock lock(mu_);
  cancel_locked(task_id);
  deliver(lock);
}

void PoolCore::cancel_locked(std::uint64_t task_id) {
  if (!tasks_.holds(task_id)) return;  // already resolved
  const std::uint32_t index = TaskTable::index_of(task_id);
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
  const int pid = slot.pid();
  resolve_locked(index, {}, TaskError(TaskError::Kind::Cancelled, "task cancelled", pid));
  task.abandoned = true;
  --running_;
  // Not started yet: the worker drops it on the kCancel frame. Running: the handler sees
  // Task::cancelled(); the worker is killed if it is still running after cancel_grace.
  send_frame_locked(slot, FrameType::kCancel, task_id);
  slot.channel->control().cancel_task_id.store(task_id, std::memory_order_release);
  task.abandon_deadline = Clock::now() + options_.cancel_grace;
  slot.load.next_scan = std::min(slot.load.next_scan, task.abandon_deadline);
  kick();
}

// The deadlines of one worker's tasks on board: a running task past its timeout gets the worker
// killed; one past its timeout while still waiting in the worker's pipeline is resolved and
// skipped; a cancelled task still running after cancel_grace gets the worker killed. Sets
// slot.load.next_scan to the next deadline.
void PoolCore::scan_deadlines_locked(WorkerSlot& slot, Clock::time_point now) {
  auto want = [&](Clock::time_point t) { slot.load.next_scan = std::min(slot.load.next_scan, t); };
  // The task whose handler runs now, as the worker says (untrusted: only compared).
  const std::uint64_t running_id =
      slot.channel->control().current_task_id.load(std::memory_order_relaxed);
  for (const std::uint32_t index : slot.load.inflight) {
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
      slot.process.timed_out_task = index;
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
                             slot.pid()));
    task.abandoned = true;
    task.abandon_deadline = Clock::time_point::max();
    --running_;
    send_frame_locked(slot, FrameType::kCancel, task.id);
  }
}

}  // namespace procpool::detail
