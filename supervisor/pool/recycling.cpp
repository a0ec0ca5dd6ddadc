#include "pool_core.hpp"

namespace procpool::detail {
using State = WorkerSlot::State;

// Recycling starts the replacement first, as a rolling update with a surge of one does: the pool
// has one slot more than max_workers for it (pool_core.cpp), so the new worker's start-up
// overlaps the old one's last tasks instead of following its exit.
// - After max_tasks_per_worker the old worker has had its quota: it drains at once (no new
//   tasks) while its replacement starts.
// - Above max_rss it is still sound, only big: it goes on serving until its replacement is
//   READY, then drains, so the pool never has fewer workers taking tasks than before.
// A recycle due while every slot is taken (another replacement is starting) waits for a free
// one; a replacement that cannot be spawned leaves the old worker to drain first, as a plain
// restart would. During a shutdown nothing is replaced: the worker just takes no new tasks. A
// worker out of memory in its handler is not recycled here: its heap may be in any state, so it
// drains at once (result_handler.cpp).
void PoolCore::recycle_locked(WorkerSlot& slot, Recycle why) {
  if (slot.state() != State::kReady || slot.process.recycle_due) return;
  if (why == Recycle::kQuotaReached || stopping_) slot.process.drain();
  if (!stopping_) slot.process.recycle_due = true;
  kick();  // the supervisor thread starts the replacement (advance_recycles_locked)
}

bool PoolCore::replaced_locked(const WorkerSlot& slot) const noexcept {
  if (!slot.process.recycle_due || !slot.process.successor) return false;
  const State next = slots_[*slot.process.successor].state();
  return next == State::kStarting || next == State::kReady || next == State::kBackoff;
}

// Run by the autoscaler on each pass: starts a replacement for each due worker that has none,
// and drains each still serving whose replacement is READY.
void PoolCore::advance_recycles_locked() {
  for (WorkerSlot& slot : slots_) {
    const bool serving = slot.state() == State::kReady;
    if (!slot.process.recycle_due || (!serving && slot.state() != State::kDraining)) continue;
    if (slot.process.successor) {
      if (!serving) continue;  // draining already: its replacement is on its own now
      if (slots_[*slot.process.successor].state() == State::kReady) {
        slot.process.drain();  // answers its tasks, then stops (serving_timer_locked)
        continue;
      }
      if (replaced_locked(slot)) continue;  // still starting, or restarting
      slot.process.successor.reset();       // its slot gave up on it: start another
    }
    WorkerSlot* free = nullptr;
    for (WorkerSlot& candidate : slots_) {
      if (candidate.state() == State::kEmpty) {
        free = &candidate;
        break;
      }
    }
    if (free == nullptr) continue;  // every slot taken: an exit frees one, and runs this again
    spawn_locked(*free);
    if (failure_) return;
    if (free->state() != State::kEmpty) {
      slot.process.successor = free->index;  // starting, or backing off from a failed spawn
    } else if (serving) {
      slot.process.drain();  // no replacement is to be had: drain first
    }
  }
}

}  // namespace procpool::detail
