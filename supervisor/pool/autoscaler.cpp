#include "pool_core.hpp"

#include <algorithm>  // std::max

namespace procpool::detail {
using State = WorkerSlot::State;

// Tasks are waiting inside a worker's pipeline behind one that has run for a while: work the
// queue does not show, which a burst dispatched straight into the rings leaves.
bool PoolCore::backlogged_locked(const WorkerSlot& slot, Clock::time_point now) const noexcept {
  if (slot.state() != State::kReady || slot.load.inflight.empty()) return false;
  // A coalesced frame at the head is that many tasks waiting behind the one that runs.
  if (slot.load.inflight.size() < 2 && tasks_in(tasks_[slot.load.inflight.front()]) < 2) {
    return false;
  }
  const Clock::time_point began = slot.load.head_began;
  return began != Clock::time_point{} && now - began >= kPipelineWork;
}

// Scale between min_workers and max_workers: up while tasks wait, in the queue or behind a busy
// worker's running task (at most one start per spawn_interval), down after idle_timeout; refill
// slots emptied by recycling. Returns when it next wants to run.
Clock::time_point PoolCore::autoscale_locked(Clock::time_point now) {
  if (stopping_) return Clock::time_point::max();
  advance_recycles_locked();
  if (failure_) return Clock::time_point::max();
  // `serving`: workers that are or will be taking tasks (a stopping or draining one is on its way
  // out and does not count towards min_workers, nor does one whose replacement is on its way).
  // `processes`: every slot with a process or a pending restart, bounded by max_workers but
  // for a recycle's replacement (recycling.cpp).
  std::size_t serving = 0, processes = 0;
  bool backlog = false, idle_worker = false;
  for (const WorkerSlot& slot : slots_) {
    const bool pending_restart = slot.state() == State::kBackoff;
    serving += slot.state() == State::kStarting ||
               (slot.state() == State::kReady && !replaced_locked(slot)) || pending_restart;
    processes += slot.live() || pending_restart;
    backlog = backlog || backlogged_locked(slot, now);
    idle_worker = idle_worker || (slot.state() == State::kReady && slot.load.inflight.empty());
  }
  // A backlog inside one worker's ring cannot move to another, but the next tasks can: worth a
  // new worker only if none is idle.
  const bool waiting = !queue_.empty() || (backlog && !idle_worker);
  Clock::time_point next = Clock::time_point::max();
  for (WorkerSlot& slot : slots_) {
    if (slot.state() != State::kEmpty) continue;
    // The slot beyond max_workers is a recycle's (recycling.cpp): a worker on its way out
    // leaves its slot taken until it exits, and its successor is restarted there.
    if (processes >= max_workers_) break;
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
    if (slot.state() != State::kReady || slot.process.recycle_due || !slot.load.inflight.empty() ||
        !queue_.empty()) {
      continue;
    }
    if (now - slot.load.last_active >= options_.idle_timeout) {
      stop_slot_locked(slot, now);
      next = std::min(next, slot.process.deadline);  // SIGKILL at, if it does not exit
      --serving;
    } else {
      next = std::min(next, slot.load.last_active + options_.idle_timeout);  // scale down then
    }
  }
  return next;
}

}  // namespace procpool::detail
