#include "pool_core.hpp"

#include <algorithm>  // std::min
#include <chrono>     // durations
#include <string>     // messages

#include "report_text.hpp"

namespace procpool::detail {
using State = WorkerSlot::State;
using std::chrono::milliseconds;

void PoolCore::stop_slot_locked(WorkerSlot& slot, Clock::time_point now) {
  send_frame_locked(slot, FrameType::kShutdown, 0);
  slot.process.stopping(now + options_.stop_grace);
}

// Deadlines: start-up, heartbeats, task timeouts, cancel grace, restarts, stops, idle workers,
// shutdown. Each slot is a state machine (WorkerProcess::State); its timer for the state it is
// in decides the transition that is due, if any. Returns when it next needs to run: the
// earliest real deadline, and, while tasks were dispatched within the last hang bound
// (heartbeat_interval x heartbeat_misses), at least once per hang bound too, which is how late
// a hang of a task dispatched while this thread slept is noticed at worst. Idle for longer, it
// sleeps until a real deadline: a dispatch to an idle worker then wakes it if it would sleep
// past that task's hang bound (start_dispatch_locked), one kick per idle period
// (docs/pool.md, "Idle").
Clock::time_point PoolCore::timers_locked(Clock::time_point now) {
  const auto hang_bound = options_.heartbeat_interval * options_.heartbeat_misses;
  Clock::time_point next =
      now - last_dispatch_ < hang_bound ? now + hang_bound : Clock::time_point::max();
  if (stopping_ && now >= shutdown_deadline_) {
    // Grace over: what is still queued fails; what is running is cut off by the stops below.
    queue_.drain([&](std::uint32_t index) {
      resolve_locked(index, {},
                     failure_ ? TaskError(TaskError::Kind::PoolFailed, "pool failed: " + *failure_)
                              : TaskError(TaskError::Kind::ShuttingDown,
                                          "pool shut down before the task could run"));
      free_task_locked(index);
    });
  }
  for (WorkerSlot& slot : slots_) {
    switch (slot.state()) {
      case State::kEmpty:
        break;
      case State::kBackoff:
        next = std::min(next, backoff_timer_locked(slot, now));
        break;
      case State::kStarting:
        next = std::min(next, starting_timer_locked(slot, now));
        break;
      case State::kStopping:
        next = std::min(next, stopping_timer_locked(slot, now));
        break;
      case State::kReady:
      case State::kDraining:
        next = std::min(next, serving_timer_locked(slot, now));
        break;
    }
  }
  if (stopping_ && !failure_) next = std::min(next, shutdown_deadline_);
  return next;
}

// kBackoff -> kEmpty (no restart is wanted any more) or kStarting (the backoff is over; a
// failed spawn backs off again).
Clock::time_point PoolCore::backoff_timer_locked(WorkerSlot& slot, Clock::time_point now) {
  if (failure_ || (stopping_ && (queue_.empty() || now >= shutdown_deadline_))) {
    slot.process.empty();
  } else if (now >= slot.process.deadline) {
    spawn_locked(slot);  // kStarting (READY by its deadline), or kBackoff again, or kEmpty
    if (slot.state() == State::kStarting || slot.state() == State::kBackoff) {
      return slot.process.deadline;
    }
  } else {
    return slot.process.deadline;
  }
  return Clock::time_point::max();
}

// kStarting: no READY by the deadline gets the worker killed (its exit leaves the state).
Clock::time_point PoolCore::starting_timer_locked(WorkerSlot& slot, Clock::time_point now) {
  if (now < slot.process.deadline) return slot.process.deadline;
  kill_locked(slot, "did not become READY within " + milliseconds_text(options_.startup_timeout),
              KillCause::kUnhealthy);
  return Clock::time_point::max();
}

// kStopping: still running after stop_grace gets the worker killed. Once killed, the loop keeps
// looking (the deadline has passed) until the exit is reaped.
Clock::time_point PoolCore::stopping_timer_locked(WorkerSlot& slot, Clock::time_point now) {
  if (now >= slot.process.deadline && !slot.process.killed) {
    kill_locked(slot, "did not exit within stop_grace " + milliseconds_text(options_.stop_grace),
                KillCause::kStop);
    return Clock::time_point::max();
  }
  return slot.process.deadline;
}

// kReady and kDraining: heartbeats, memory and the tasks' deadlines may get the worker killed;
// a drained worker, or any once the pool is stopping and has nothing for it, goes to kStopping.
Clock::time_point PoolCore::serving_timer_locked(WorkerSlot& slot, Clock::time_point now) {
  Clock::time_point next = Clock::time_point::max();
  auto soon = [&](Clock::time_point t) { next = std::min(next, t); };
  if (slot.process.killed) return next;
  slot.process.restart.on_alive(now);
  if (slot.process.restart.broken_in_a_row() != 0)
    soon(slot.process.ready_at + options_.restart.min_uptime);
  // A heartbeat is owed only while tasks are on board (an idle worker sleeps, and its
  // heartbeat with it), looked at every interval meanwhile.
  if (!slot.load.inflight.empty()) {
    if (!heartbeat_ok_locked(slot, now)) return next;
    soon(now + options_.heartbeat_interval);
  }
  if (memory_watched() && now >= slot.process.next_memory_check) {
    slot.process.next_memory_check = now + options_.heartbeat_interval;
    check_memory_locked(slot);
    if (slot.process.killed) return next;
  }
  if (memory_watched()) soon(slot.process.next_memory_check);
  // Deadlines of the tasks on board (timeouts, cancel grace): scanned only when one is due, so
  // a deep pipeline costs nothing per loop. Dispatch and cancel pull next_scan in.
  if (now >= slot.load.next_scan) {
    slot.load.next_scan = Clock::time_point::max();
    scan_deadlines_locked(slot, now);
    if (slot.process.killed) return next;
  }
  soon(slot.load.next_scan);
  if (slot.process.killed) return next;
  if (slot.state() == State::kDraining && slot.load.inflight.empty()) {
    stop_slot_locked(slot, now);
  } else if (stopping_ && slot.load.inflight.empty() && queue_.empty()) {
    stop_slot_locked(slot, now);
  } else if (stopping_ && now >= shutdown_deadline_) {
    stop_slot_locked(slot, now);  // grace over: the worker finishes its current task
  }
  if (slot.state() == State::kStopping) soon(slot.process.deadline);  // SIGKILL at
  return next;
}

// The worker's heartbeat, worker-written and so checked (docs/design-rules.md §17): one from
// before the worker started, or from the future (which would blind the hang check), is a lie;
// none for heartbeat_misses intervals since the tasks came on board (an idle worker does not
// beat) means hung. Either gets the worker killed (false).
bool PoolCore::heartbeat_ok_locked(WorkerSlot& slot, Clock::time_point now) {
  const auto now_ms = static_cast<std::uint64_t>(
      std::chrono::duration_cast<milliseconds>(now.time_since_epoch()).count());
  const auto hung_after = options_.heartbeat_interval * options_.heartbeat_misses;
  const std::uint64_t beat = slot.channel->control().heartbeat_ms.load(std::memory_order_relaxed);
  const auto started_ms = static_cast<std::uint64_t>(
      std::chrono::duration_cast<milliseconds>(slot.process.started.time_since_epoch()).count());
  const auto future_slack =
      static_cast<std::uint64_t>((hung_after + std::chrono::seconds(1)).count());
  if (beat < started_ms || beat > now_ms + future_slack) {
    slot.process.control_lied = true;
    kill_locked(slot,
                std::string("protocol violation: heartbeat ") +
                    (beat < started_ms ? "from before the worker started" : "in the future") +
                    " (" + std::to_string(beat) + " ms; now " + std::to_string(now_ms) + " ms)",
                ProtocolViolation::ControlBlockLie);
    return false;
  }
  const auto busy_ms = static_cast<std::uint64_t>(
      std::chrono::duration_cast<milliseconds>(slot.load.busy_since.time_since_epoch()).count());
  const std::uint64_t owed_since = std::max(beat, busy_ms);
  if (now_ms > owed_since && milliseconds(now_ms - owed_since) > hung_after) {
    kill_locked(slot,
                "no heartbeat for " + milliseconds_text(milliseconds(now_ms - owed_since)) +
                    " with tasks on board (hung or stopped)",
                KillCause::kUnhealthy);
    return false;
  }
  return true;
}

}  // namespace procpool::detail
