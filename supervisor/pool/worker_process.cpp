#include "worker_process.hpp"

#include <signal.h>  // SIGKILL

#include <cassert>  // transitions
#include <utility>  // std::move

namespace procpool::detail {

void WorkerProcess::set_state(State next) noexcept {
  assert(transition_allowed(state_, next));
  state_ = next;
}

void WorkerProcess::launched(ChildProcess launched_child,
                             std::unique_ptr<OutputCapture> stdout_capture,
                             std::unique_ptr<OutputCapture> stderr_capture,
                             std::uint64_t run_incarnation, Clock::time_point now,
                             Clock::time_point ready_by, double now_unix_s) {
  child = std::move(launched_child);
  out = std::move(stdout_capture);
  err = std::move(stderr_capture);
  incarnation = run_incarnation;
  started = now;
  ready_at = Clock::time_point{};
  deadline = ready_by;
  started_unix_s = now_unix_s;
  next_memory_check = now;
  memory_exceeded = false;
  killed = false;
  kill_cause = KillCause::kUnhealthy;
  kill_reason.clear();
  violation = ProtocolViolation::None;
  timed_out_task = kNoTask;
  control_lied = false;
  recycle_due = false;
  successor.reset();
  set_state(State::kStarting);
}

void WorkerProcess::became_ready(Clock::time_point now) {
  set_state(State::kReady);
  ready_at = now;
  restart.on_ready(now);
}

void WorkerProcess::drain() noexcept {
  if (state_ == State::kReady) set_state(State::kDraining);
}

void WorkerProcess::stopping(Clock::time_point kill_at) noexcept {
  set_state(State::kStopping);
  deadline = kill_at;
}

void WorkerProcess::back_off(Clock::time_point restart_at) noexcept {
  set_state(State::kBackoff);
  deadline = restart_at;
}

void WorkerProcess::empty() noexcept { set_state(State::kEmpty); }

bool WorkerProcess::kill(std::string reason, KillCause cause) {
  if (!has_process()) return false;
  if (!killed) {
    killed = true;
    kill_reason = std::move(reason);
    kill_cause = cause;
  }
  // Through the pidfd, then the process group, for any children of the worker (PDEATHSIG does
  // not reach them); ChildProcess refuses both once reaped, so no recycled pid is hit.
  child.signal(SIGKILL);
  child.signal_group(SIGKILL);
  drain();
  return true;
}

WorkerMetrics::State WorkerProcess::metrics_state() const noexcept {
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

}  // namespace procpool::detail
