// ManagedProcess: the table of its states, the public calls (start, stop, restart, kill) and
// what it reports (events, status). Launching and watching a run are in
// managed_process_run.cpp; killing, exits, leftovers and the restart decision in
// managed_process_exit.cpp. Every transition goes through transition() below.

#include "managed_process.hpp"

#include <utility>  // std::move

#include "group_usage.hpp"
#include "procpool/error.hpp"
#include "procpool/supervisor.hpp"

namespace procpool::detail {
namespace {

using Clock = EventLoop::Clock;
using std::chrono::duration_cast;
using std::chrono::milliseconds;

// The transitions of docs/supervisor.md, "States"; anything else is a bug in managed_process*.cpp.
bool allowed(ProgramState from, ProgramState to) noexcept {
  using S = ProgramState;
  switch (to) {
    case S::Starting:  // start(), a restart at once, or the end of a backoff
      return from == S::Stopped || from == S::Exited || from == S::Backoff || from == S::CrashLoop;
    case S::Ready:  // readiness
      return from == S::Starting;
    case S::Stopping:  // stop(), a kill (timeout, watchdog, memory), STOPPING=1
      return from == S::Starting || from == S::Ready;
    case S::Exited:  // the main process exited
      return from == S::Starting || from == S::Ready || from == S::Stopping;
    case S::Backoff:
    case S::CrashLoop:  // a broken start, or a failed spawn while backing off
      return from == S::Exited || from == S::Backoff || from == S::CrashLoop;
    case S::Stopped:  // stop() while backing off, restart mode, give_up_after, a failed start()
      return from == S::Exited || from == S::Backoff || from == S::CrashLoop;
  }
  return false;
}

}  // namespace

ManagedProcess::ManagedProcess(ProcessHost& host, std::shared_ptr<const Program> program,
                               unsigned instance)
    : host_(host),
      program_holder_(std::move(program)),
      program_(*program_holder_),
      spec_(program_.spec),
      instance_(instance),
      name_(program_.spec.name + ":" + std::to_string(instance)),
      tracker_(program_.spec.restart) {}

ManagedProcess::~ManagedProcess() {
  host_.loop->cancel(backoff_timer_);
  if (run_) {
    cancel_run_timers();
    host_.loop->unwatch(run_->child.pidfd());
    host_.claim_pid(run_->child.pid(), nullptr);
    run_->child.kill_and_reap();
    for (OutputCapture* capture : {run_->out.get(), run_->err.get()}) {
      if (!capture->done()) host_.loop->unwatch(capture->read_fd());
    }
  }
  for (auto& remains : remains_) {
    host_.loop->cancel(remains->kill_timer);
    host_.loop->cancel(remains->check_timer);
    remains->child.kill_and_reap();
    for (OutputCapture* capture : {remains->out.get(), remains->err.get()}) {
      if (!capture->done()) host_.loop->unwatch(capture->read_fd());
    }
  }
}

void ManagedProcess::transition(ProgramState to) {
  if (!allowed(state_, to)) {
    throw Error("internal error: " + name_ + " cannot go from " + to_string(state_) + " to " +
                to_string(to));
  }
  state_ = to;
  // Shutdown waits for every instance to be idle, a rollout for its new instances to be ready:
  // this may be the step either waits for.
  host_.changed();
}

void ManagedProcess::emit(SupervisorEvent::Kind kind, const std::string& message, int error_code,
                          bool gave_up) {
  SupervisorEvent event;
  event.kind = kind;
  event.program = spec_.name;
  event.instance = instance_;
  event.name = name_;
  event.pid = run_ ? run_->child.pid() : 0;
  event.broken_in_a_row = tracker_.broken_in_a_row();
  event.message = message;
  event.error_code = error_code;
  event.gave_up = gave_up;
  if (kind == SupervisorEvent::Kind::Exited && last_exit_) {
    event.exit = last_exit_;
    event.pid = last_exit_->pid;
  }
  host_.emit(std::move(event));
}

// --- the public calls ------------------------------------------------------------------------

void ManagedProcess::start() {
  if (state_ != ProgramState::Stopped && state_ != ProgramState::Backoff &&
      state_ != ProgramState::CrashLoop) {
    return;
  }
  host_.loop->cancel(backoff_timer_);
  backoff_timer_ = 0;
  // An explicit start is a fresh chance: the program may have been fixed.
  tracker_ = RestartTracker(spec_.restart);
  try {
    launch_run();
  } catch (const Error& e) {
    const auto* system = dynamic_cast<const SystemError*>(&e);
    const int code = system != nullptr ? system->code() : 0;
    // launch_run throws before its transition to Starting: still Stopped, Backoff or CrashLoop.
    if (state_ != ProgramState::Stopped) transition(ProgramState::Stopped);
    emit(SupervisorEvent::Kind::SpawnFailed, e.what(), code);
    throw SupervisorError(SupervisorError::Kind::SpawnFailed, name_ + ": " + e.what(), 0, code);
  }
}

void ManagedProcess::stop(std::function<void()> done, KillReason reason) {
  // Every process there is now belongs to a run up to the last one launched.
  if (done) stop_waiters_.push_back({last_run_id_, std::move(done)});
  switch (state_) {
    case ProgramState::Stopped:
    case ProgramState::Exited:
      break;
    case ProgramState::Backoff:
    case ProgramState::CrashLoop:
      host_.loop->cancel(backoff_timer_);
      backoff_timer_ = 0;
      transition(ProgramState::Stopped);
      emit(SupervisorEvent::Kind::Stopped, "stopped");
      break;
    case ProgramState::Starting:
    case ProgramState::Ready:
    case ProgramState::Stopping:
      stop_requested_ = true;
      restart_requested_ = false;
      kill_run(reason, true);
      return;
  }
  call_stop_waiters();
}

void ManagedProcess::restart() {
  switch (state_) {
    case ProgramState::Starting:
    case ProgramState::Ready:
    case ProgramState::Stopping:
      stop_requested_ = true;
      restart_requested_ = true;
      kill_run(KillReason::Stop, true);
      return;
    default:
      start();
  }
}

void ManagedProcess::kill() {
  switch (state_) {
    case ProgramState::Backoff:
    case ProgramState::CrashLoop:
      stop({});
      break;
    case ProgramState::Starting:
    case ProgramState::Ready:
    case ProgramState::Stopping:
      stop_requested_ = true;
      restart_requested_ = false;
      kill_run(KillReason::Stop, false);
      break;
    case ProgramState::Stopped:
    case ProgramState::Exited:
      break;
  }
  // The leftovers of runs that already exited: their deadline is now.
  std::vector<Remains*> all;
  for (auto& remains : remains_) all.push_back(remains.get());
  for (Remains* remains : all) finish_remains(remains);
}

// No process of a run up to `run_id` is left, and no decision is half made (Exited is the
// step between an exit and what follows it).
bool ManagedProcess::gone_up_to(std::uint64_t run_id) const noexcept {
  if (state_ == ProgramState::Exited) return false;
  if (run_ && run_->id <= run_id) return false;
  for (const auto& remains : remains_) {
    if (remains->id <= run_id) return false;
  }
  return true;
}

// Called after every step that may end a process or a stop: each waiter runs once, when what it
// waits for is gone, whatever was started since.
void ManagedProcess::call_stop_waiters() {
  std::vector<std::function<void()>> due;
  std::vector<StopWaiter> waiting;
  for (StopWaiter& waiter : stop_waiters_) {
    if (gone_up_to(waiter.up_to)) {
      due.push_back(std::move(waiter.done));
    } else {
      waiting.push_back(std::move(waiter));
    }
  }
  stop_waiters_ = std::move(waiting);
  for (auto& done : due) done();
}

ProcessStatus ManagedProcess::status() const {
  ProcessStatus status;
  status.program = spec_.name;
  status.instance = instance_;
  status.name = name_;
  status.state = state_;
  status.restarts = starts_ > 0 ? starts_ - 1 : 0;
  status.last_exit = last_exit_;
  status.stderr_tail = last_stderr_tail_;
  if (run_) {
    status.pid = run_->child.pid();
    status.uptime = duration_cast<milliseconds>(Clock::now() - run_->started_at);
    // Read now rather than at the last health check: status() is rare, and a fresh start
    // would otherwise show zero for up to health_interval.
    const ProcessUsage usage = read_group_usage(run_->child.pid());
    status.rss_bytes = usage.rss_bytes;
    status.cpu_seconds = usage.cpu_s;
    status.status_text = run_->status_text;
    status.stderr_tail = run_->err->tail().text();
  }
  return status;
}

}  // namespace procpool::detail
