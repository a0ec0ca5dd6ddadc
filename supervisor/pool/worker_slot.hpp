#pragma once

#include <cassert>   // transitions
#include <chrono>    // time points
#include <cstdint>   // std::uint64_t
#include <deque>     // in-flight tasks
#include <memory>    // output captures
#include <optional>  // the channel exists only while a worker runs
#include <string>    // kill reasons

#include "child_process.hpp"
#include "output_capture.hpp"
#include "procpool/metrics.hpp"
#include "procpool/protocol_violation.hpp"
#include "procpool/task_error.hpp"
#include "restart_tracker.hpp"
#include "worker_channel.hpp"

namespace procpool::detail {

using Clock = std::chrono::steady_clock;

// Why the supervisor killed a worker. It decides what the death says about the program and what
// is trusted of what the worker wrote (its report of the running task).
enum class KillCause : std::uint8_t {
  kProtocolViolation,  // it broke the protocol: nothing it wrote is trusted
  kUnhealthy,          // no READY in time, or no heartbeat: hung
  kForTask,            // for a task's sake (timeout, cancel grace, max_rss_hard): it was healthy
  kStop,               // stopping (stop_grace overrun, Pool::terminate)
};

// One place for a worker process in the pool: the process that fills it now (if any), its
// channel, the tasks on board, and the slot's restart history. Owned by PoolCore;
// every field is guarded by PoolCore's mutex, and only the supervisor thread spawns, kills and
// reaps.
struct WorkerSlot {
  enum class State {
    kEmpty,     // no process, none wanted (below the current scale)
    kStarting,  // spawned, READY not seen yet
    kReady,     // serving
    kDraining,  // serving its in-flight tasks, no new ones (recycling)
    kStopping,  // shutdown frame sent, waiting for the exit
    kBackoff,   // its worker died; restarts at restart_at
  };

  // The slot's state machine. Transitions (each by one caller, named in the comments of
  // State): spawn to kStarting, READY to kReady, recycling or a kill to kDraining, a stop to
  // kStopping, an exit or a failed spawn to kBackoff or kEmpty, a cancelled restart to kEmpty.
  static constexpr bool transition_allowed(State from, State to) noexcept {
    switch (to) {
      case State::kEmpty:
      case State::kBackoff:
        return true;  // an exit, a failed spawn, or no restart wanted: from any state
      case State::kStarting:
        return from == State::kEmpty || from == State::kBackoff;
      case State::kReady:
        return from == State::kStarting;
      case State::kDraining:
        return from == State::kReady;
      case State::kStopping:
        return from == State::kReady || from == State::kDraining;
    }
    return false;
  }
  State state() const noexcept { return state_; }
  // The one writer of the state, so every transition is found here and checked against the
  // machine (in builds with assertions).
  void set_state(State next) noexcept {
    assert(transition_allowed(state_, next));
    state_ = next;
  }

  unsigned index = 0;

  // The current process, from spawn to reap (the process layer's ChildProcess: signals through
  // the pidfd, group kill only before the reap, reaped once).
  std::uint64_t incarnation = 0;
  ChildProcess process;
  int pid() const noexcept { return process.pid(); }
  // Launched and not yet reaped: there is something to signal.
  bool has_process() const noexcept { return process.pid() > 0 && !process.reaped(); }
  // Its stdout and stderr (PoolOptions::worker_stdout, worker_stderr), read by the supervisor
  // thread outside the pool's mutex, so the sinks never run under it. Only the supervisor
  // thread creates, reads and closes them; at the reap they move to PoolCore::closing_outputs_.
  std::unique_ptr<OutputCapture> out;
  std::unique_ptr<OutputCapture> err;
  // Its segment, rings and doorbell, and the task and answer on their way through them.
  std::optional<WorkerChannel> channel;

  // Tasks dispatched to this worker and not yet answered, in dispatch order. The SDK serves them
  // in order; WorkerControl::current_task_id says which one runs.
  std::deque<std::uint32_t> inflight;
  static constexpr std::uint32_t kNoTask = WorkerChannel::kNoTask;
  // The task whose payload is only partly written (its fragments wait for ring room), or kNoTask.
  std::uint32_t writing_task() const noexcept {
    return channel ? channel->writing_task() : kNoTask;
  }

  // Adaptive pipeline (PoolOptions::pipeline_depth 0): the worker's time per task (EWMA of the
  // time between answers while it is busy), and the depth it gives.
  std::int64_t service_ns = 0;  // 0 = not measured yet
  Clock::time_point last_answer{};
  // One until measured: a fresh worker's first task may be long, and short tasks must not
  // queue behind it.
  unsigned depth = 1;
  // When the tasks on board next need looking at (a timeout or a cancel grace falls due), and
  // when the worker's memory is next sampled.
  Clock::time_point next_scan = Clock::time_point::max();
  Clock::time_point next_memory_check{};
  bool memory_exceeded = false;  // killed for max_rss_hard

  Clock::time_point started{};
  Clock::time_point ready_at{};
  Clock::time_point last_active{};
  Clock::time_point deadline{};  // kStarting: READY by; kStopping: SIGKILL at; kBackoff: restart at
  double started_unix_s = 0;
  std::uint64_t dispatched = 0;     // tasks sent to this incarnation
  std::uint64_t recycle_after = 0;  // 0 = never
  std::uint64_t tasks_done = 0;
  std::uint64_t tasks_failed = 0;
  // The same over every incarnation of the slot.
  std::uint64_t slot_tasks_done = 0;
  std::uint64_t slot_tasks_failed = 0;

  // Why the supervisor killed it, if it did (the exit then reports this, not just SIGKILL).
  bool killed = false;
  KillCause kill_cause = KillCause::kUnhealthy;
  std::string kill_reason;
  ProtocolViolation violation = ProtocolViolation::None;  // with kProtocolViolation: which rule
  std::uint32_t timed_out_task = kNoTask;
  bool control_lied = false;  // killed for an impossible control block: current_task_id too
  std::uint64_t last_answered_id = 0;  // the task of its latest answer (charged_task_locked)

  // Restart history, kept across incarnations.
  std::uint64_t restarts = 0;
  RestartTracker restart;
  bool crash_loop_reported = false;  // the CrashLoop event of the current run of failures

  bool live() const noexcept {
    return state_ == State::kStarting || state_ == State::kReady || state_ == State::kDraining ||
           state_ == State::kStopping;
  }
  WorkerMetrics::State metrics_state() const noexcept {
    switch (state_) {
      case State::kEmpty:
        return WorkerMetrics::State::Empty;
      case State::kStarting:
        return WorkerMetrics::State::Starting;
      case State::kReady:
        return WorkerMetrics::State::Ready;
      case State::kDraining:
        return WorkerMetrics::State::Draining;
      case State::kStopping:
        return WorkerMetrics::State::Stopping;
      case State::kBackoff:
        return restart.crash_looping() ? WorkerMetrics::State::CrashLoop
                                       : WorkerMetrics::State::Backoff;
    }
    return WorkerMetrics::State::Empty;
  }

 private:
  State state_ = State::kEmpty;
};

}  // namespace procpool::detail
