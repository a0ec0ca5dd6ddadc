#include "pool_core.hpp"

namespace procpool::detail {
// The task on board that the death is charged to, if any. Normally the one whose handler was
// running, as the worker said (untrusted: only compared with our own ids), or the one we killed
// it for. When that report cannot be trusted (the worker scribbled its control block, or names
// a task that is neither on board nor the one it last answered), or names nothing while only
// one task was on board of a worker that died by itself, the task the worker serves first (the
// oldest of the highest priority on board), is charged: otherwise a task that makes every
// worker it reaches scribble or die would go from worker to worker for free, forever. A task that
// saw kMaxUnchargedDeaths workers die under it uncharged is charged too, for the same reason (a
// rogue that breaks the protocol between tasks). A protocol violation alone does not make the
// report a lie: the task behind a malformed or duplicate answer is innocent.
const TaskRecord* PoolCore::charged_task_locked(const WorkerSlot& slot) const {
  const std::uint64_t running_id =
      slot.channel ? slot.channel->control().current_task_id.load(std::memory_order_relaxed) : 0;
  const TaskRecord* first_served = nullptr;
  std::size_t live = 0;
  bool named = false;
  for (const std::uint32_t index : slot.load.inflight) {
    const TaskRecord& task = tasks_[index];
    if (slot.process.timed_out_task == index) return &task;
    if (running_id != 0 && task.id == running_id) {
      named = true;
      if (slot.process.timed_out_task == WorkerSlot::kNoTask && !task.abandoned) return &task;
    }
    if (task.abandoned) continue;
    ++live;
    if (first_served == nullptr || task.priority < first_served->priority) first_served = &task;
  }
  if (slot.process.timed_out_task != WorkerSlot::kNoTask || first_served == nullptr) return nullptr;
  // The last task it answered may still be named if it died before clearing the field: a
  // stale report, not a lie.
  const bool untrusted = slot.process.control_lied ||
                         (running_id != 0 && !named && running_id != slot.load.last_answered_id);
  // A lone task on a worker that died by itself: nothing else on board can have done it. (Not
  // for a worker we killed as hung: with no task named running, it hung outside any task.)
  if (untrusted || (running_id == 0 && live == 1 && !slot.process.killed)) return first_served;
  if (slot.process.killed && slot.process.kill_cause != KillCause::kUnhealthy)
    return nullptr;  // killed for a task
  if (first_served->uncharged_deaths + 1 >= kMaxUnchargedDeaths) return first_served;
  return nullptr;
}

}  // namespace procpool::detail
