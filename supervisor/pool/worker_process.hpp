#pragma once

// The process half of a pool worker (WorkerSlot): the managed process, built from the process
// layer's parts (ChildProcess, OutputCapture, RestartTracker), and its state machine.
//
//   kEmpty -> kStarting -> kReady -> kDraining -> kStopping -> (exit) -> kBackoff | kEmpty
//
// It is a machine of its own, not procpool::Supervisor's ManagedProcess, because a worker's
// life is the task protocol's: it is ready when its READY frame arrives, healthy while its
// heartbeat in the shared control block moves, stopped by a shutdown frame, drained before it
// is recycled, and what its death says about the program depends on the tasks it had on board
// (docs/architecture.md, "Two state machines"). Every transition is a member function defined
// in worker_process.cpp, the one writer of the state; PoolCore decides when, under its mutex.

#include <chrono>    // time points
#include <cstdint>   // std::uint64_t
#include <memory>    // output captures
#include <optional>  // std::optional
#include <string>    // kill reasons

#include "child_process.hpp"
#include "output_capture.hpp"
#include "procpool/metrics.hpp"
#include "procpool/protocol_violation.hpp"
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

class WorkerProcess {
 public:
  enum class State {
    kEmpty,     // no process, none wanted (below the current scale)
    kStarting,  // spawned, READY not seen yet
    kReady,     // serving
    kDraining,  // serving its in-flight tasks, no new ones (recycling)
    kStopping,  // shutdown frame sent, waiting for the exit
    kBackoff,   // its worker died; restarts at deadline
  };
  static constexpr std::uint32_t kNoTask = WorkerChannel::kNoTask;

  // The machine's edges; the transitions below assert them (in builds with assertions).
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

  // --- transitions (worker_process.cpp) ---
  // Launched: -> kStarting, with a fresh run (nothing of the last one's kill is kept). It must
  // be READY by `ready_by`.
  void launched(ChildProcess child, std::unique_ptr<OutputCapture> out,
                std::unique_ptr<OutputCapture> err, std::uint64_t incarnation,
                Clock::time_point now, Clock::time_point ready_by, double now_unix_s);
  // Its READY frame: kStarting -> kReady.
  void became_ready(Clock::time_point now);
  // No new tasks (recycling, memory, a kill on its way): kReady -> kDraining; else nothing.
  void drain() noexcept;
  // Shutdown frame sent: -> kStopping, SIGKILLed if still running at `kill_at`.
  void stopping(Clock::time_point kill_at) noexcept;
  // Dead (or never started) and to be started again at `restart_at`: -> kBackoff.
  void back_off(Clock::time_point restart_at) noexcept;
  // Dead (or never started) and not wanted: -> kEmpty.
  void empty() noexcept;
  // SIGKILL to it and its process group; the first kill's reason and cause are the ones the
  // exit reports. Drains it (no new tasks meanwhile). False if there is no process to kill.
  bool kill(std::string reason, KillCause cause);
  // Reaped: the process is gone (its captures have been retired already).
  void reaped() noexcept { child = ChildProcess(); }

  State state() const noexcept { return state_; }
  bool live() const noexcept {
    return state_ == State::kStarting || state_ == State::kReady || state_ == State::kDraining ||
           state_ == State::kStopping;
  }
  WorkerMetrics::State metrics_state() const noexcept;
  int pid() const noexcept { return child.pid(); }
  // Launched and not yet reaped: there is something to signal.
  bool has_process() const noexcept { return child.pid() > 0 && !child.reaped(); }

  // --- the current run (from launched() to the reap) ---
  std::uint64_t incarnation = 0;
  // Signals through the pidfd, group kill only before the reap, reaped once.
  ChildProcess child;
  // Its stdout and stderr (PoolOptions::worker_stdout, worker_stderr), read by the supervisor
  // thread outside the pool's mutex, so the sinks never run under it. Only the supervisor
  // thread creates, reads and closes them; at the reap they move to PoolCore::closing_outputs_.
  std::unique_ptr<OutputCapture> out;
  std::unique_ptr<OutputCapture> err;
  Clock::time_point started{};
  Clock::time_point ready_at{};
  // kStarting: READY by; kStopping: SIGKILL at; kBackoff: restart at.
  Clock::time_point deadline{};
  double started_unix_s = 0;
  // When its memory is next sampled, and whether it was killed for max_rss_hard.
  Clock::time_point next_memory_check{};
  bool memory_exceeded = false;

  // Why the supervisor killed it, if it did (the exit then reports this, not just SIGKILL).
  bool killed = false;
  KillCause kill_cause = KillCause::kUnhealthy;
  std::string kill_reason;
  ProtocolViolation violation = ProtocolViolation::None;  // with kProtocolViolation: which rule
  std::uint32_t timed_out_task = kNoTask;                 // killed for this task's timeout
  bool control_lied = false;  // killed for an impossible control block: current_task_id too
  // Recycling (recycling.cpp): due for it (max_tasks, max_rss), it goes on serving until the
  // replacement started for it in slot `successor` is READY (a replacement that dies before
  // READY is restarted in that slot, as any worker is, and still counts as the replacement).
  bool recycle_due = false;
  std::optional<unsigned> successor;

  // --- kept across runs ---
  std::uint64_t restarts = 0;
  RestartTracker restart;
  bool crash_loop_reported = false;  // the CrashLoop event of the current run of failures

 private:
  void set_state(State next) noexcept;

  State state_ = State::kEmpty;
};

}  // namespace procpool::detail
