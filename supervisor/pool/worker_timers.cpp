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
  slot.state = State::kStopping;
  slot.deadline = now + options_.stop_grace;
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

}  // namespace procpool::detail
