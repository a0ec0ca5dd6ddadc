#include "pool_core.hpp"

#include "callback_scope.hpp"

namespace procpool::detail {
void PoolCore::emit_locked(const WorkerSlot& slot, PoolEvent event) {
  if (!options_.on_event) return;
  if (event.at == Clock::time_point{}) event.at = Clock::now();
  event.slot = slot.index;
  event.incarnation = slot.process.incarnation;
  if (event.consecutive_failures == 0) {
    event.consecutive_failures = static_cast<unsigned>(slot.process.restart.broken_in_a_row());
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

}  // namespace procpool::detail
