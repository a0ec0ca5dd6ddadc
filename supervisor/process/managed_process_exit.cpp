// ManagedProcess, the end of a run: killing it (the stop signal, the SIGKILL deadline), its
// main process's exit, the leftovers of its process group (Remains), and the decision that
// follows (stopped, restarted at once, or a backoff).

#include <signal.h>  // SIGKILL

#include <algorithm>  // std::min
#include <string>     // std::to_string
#include <utility>    // std::move

#include "group_usage.hpp"
#include "managed_process.hpp"
#include "procpool/error.hpp"

namespace procpool::detail {
namespace {

using Clock = EventLoop::Clock;
using std::chrono::duration_cast;
using std::chrono::milliseconds;

// How soon, then how often at most, the leftovers of an exited run are looked at again: one
// that closed its pipes early gives no EOF when it exits (the interval doubles up to the cap).
constexpr milliseconds kFirstRemainsCheck{10};
constexpr milliseconds kMaxRemainsCheck{250};

}  // namespace

void ManagedProcess::cancel_run_timers() {
  if (!run_) return;
  for (EventLoop::TimerId* id : {&run_->start_timer, &run_->watchdog_timer, &run_->health_timer,
                                 &run_->probe_timer, &run_->kill_timer}) {
    host_.loop->cancel(*id);
    *id = 0;
  }
}

// --- killing ---------------------------------------------------------------------------------

void ManagedProcess::kill_run(KillReason reason, bool graceful) {
  if (!run_) return;
  if (run_->kill_reason == KillReason::None) run_->kill_reason = reason;
  for (EventLoop::TimerId* id : {&run_->start_timer, &run_->watchdog_timer, &run_->probe_timer}) {
    host_.loop->cancel(*id);
    *id = 0;
  }
  if (state_ != ProgramState::Stopping) transition(ProgramState::Stopping);
  if (!graceful) {
    run_->kill_deadline = Clock::now();  // its leftovers get no grace either
    host_.loop->cancel(run_->kill_timer);
    run_->kill_timer = 0;
    kill_group_now();
    return;
  }
  if (!run_->child.signal_group(spec_.stop_signal)) run_->child.signal(spec_.stop_signal);
  run_->stop_signal_sent = true;
  // The deadline is the one set when the stop began: a second stop, a restart or the
  // shutdown does not move it.
  if (!run_->kill_deadline) {
    run_->kill_deadline = Clock::now() + spec_.stop_grace;
    arm_kill_timer();
  }
}

void ManagedProcess::arm_kill_timer() {
  host_.loop->cancel(run_->kill_timer);
  run_->kill_timer = host_.loop->at(*run_->kill_deadline, [this] {
    if (!run_) return;
    run_->kill_timer = 0;
    kill_group_now();
  });
}

void ManagedProcess::kill_group_now() noexcept {
  run_->child.signal_group(SIGKILL);
  run_->child.signal(SIGKILL);
}

// --- the exit --------------------------------------------------------------------------------

void ManagedProcess::on_main_exit() {
  const std::optional<ExitStatus> status = run_->child.peek_exit();
  if (!status) return;
  const bool unknown = !status->known;
  const int pid = run_->child.pid();
  host_.loop->unwatch(run_->child.pidfd());
  host_.claim_pid(pid, nullptr);
  cancel_run_timers();
  // What it wrote just before it died is part of its report.
  if (!run_->out->read_some()) close_capture(*run_->out);
  if (!run_->err->read_some()) close_capture(*run_->err);

  ExitReport report;
  report.pid = pid;
  report.signaled = status->signaled;
  report.exit_code = status->code;  // -1 if unknown
  report.status_known = status->known;
  report.signal = status->signal;
  report.core_dumped = status->core_dumped;
  report.uptime = duration_cast<milliseconds>(Clock::now() - run_->started_at);
  report.was_ready = run_->ready_at.has_value();
  report.killed_by = run_->kill_reason;
  report.stderr_tail = run_->err->tail().text();
  last_stderr_tail_ = report.stderr_tail;
  const bool clean_own_exit = status->clean() && report.killed_by == KillReason::None;
  last_run_stable_ = run_->ready_at && Clock::now() - *run_->ready_at >= spec_.restart.min_uptime;
  last_exit_ = std::move(report);

  // The reads above ran the output sinks, which may have called stop() or restart() and so
  // armed a timer for this run: none may outlive it (a later one would act on the next run).
  cancel_run_timers();
  auto remains = std::make_unique<Remains>();
  remains->id = run_->id;
  remains->child = std::move(run_->child);
  remains->out = std::move(run_->out);
  remains->err = std::move(run_->err);
  remains->kill_deadline = run_->kill_deadline;
  remains->stop_signal_sent = run_->stop_signal_sent;
  run_.reset();

  transition(ProgramState::Exited);
  bury(*remains_.emplace_back(std::move(remains)));
  emit(SupervisorEvent::Kind::Exited,
       unknown ? "exit status unknown: another waiter reaped pid " + std::to_string(pid) : "");
  decide_after_exit(clean_own_exit);
  call_stop_waiters();
}

// KillMode=control-group: the main process is gone, so the rest of its group gets the stop
// signal (if this stop has not sent it yet) and SIGKILL at the deadline: the one of the stop in
// progress, else stop_grace from now. The zombie main process is reaped only then: until its
// reap it keeps the pgid from being reused, so kill(-pgid) cannot hit a stranger.
void ManagedProcess::bury(Remains& remains) {
  const int pid = remains.child.pid();
  // Reaped by another waiter: its pgid is no longer ours to signal (ChildProcess refuses), so
  // there is nothing to wait for.
  if (remains.child.reaped() || !group_has_members_besides(pid, pid)) {
    finish_remains(&remains);
    return;
  }
  const Clock::time_point now = Clock::now();
  if (!remains.kill_deadline) remains.kill_deadline = now + spec_.stop_grace;  // on its own
  if (*remains.kill_deadline <= now) {
    finish_remains(&remains);
    return;
  }
  if (!remains.stop_signal_sent) {  // an exit of its own, or after STOPPING=1
    remains.child.signal_group(spec_.stop_signal);
    remains.stop_signal_sent = true;
  }
  Remains* raw = &remains;
  remains.kill_timer = host_.loop->at(*remains.kill_deadline, [this, raw] {
    raw->kill_timer = 0;
    finish_remains(raw);
  });
  check_remains_after(remains, kFirstRemainsCheck);
}

void ManagedProcess::check_remains_after(Remains& remains, milliseconds delay) {
  Remains* raw = &remains;
  remains.check_timer = host_.loop->after(delay, [this, raw, delay] {
    raw->check_timer = 0;
    const int pid = raw->child.pid();
    if (!group_has_members_besides(pid, pid)) {
      finish_remains(raw);
      return;
    }
    check_remains_after(*raw, std::min(delay * 2, kMaxRemainsCheck));
  });
}

void ManagedProcess::finish_remains(Remains* remains) {
  host_.loop->cancel(remains->kill_timer);
  host_.loop->cancel(remains->check_timer);
  remains->child.signal_group(SIGKILL);
  remains->child.try_reap();
  close_capture(*remains->out);
  close_capture(*remains->err);
  std::erase_if(remains_, [remains](const auto& r) { return r.get() == remains; });
  call_stop_waiters();
  host_.changed();
}

// --- what follows an exit --------------------------------------------------------------------

void ManagedProcess::decide_after_exit(bool clean_own_exit) {
  const auto stopped = [this](const std::string& why, bool gave_up = false) {
    transition(ProgramState::Stopped);
    emit(SupervisorEvent::Kind::Stopped, why, 0, gave_up);
  };
  if (stop_requested_) {
    stop_requested_ = false;
    if (!restart_requested_) {
      stopped("stopped");
      return;
    }
    restart_requested_ = false;
    tracker_.on_death(DeathKind::kIntended, 0);
    start_or_back_off();
    return;
  }
  if (spec_.restart_mode == RestartMode::Never) {
    stopped("exited; restart mode never");
    return;
  }
  if (spec_.restart_mode == RestartMode::OnFailure && clean_own_exit) {
    stopped("exited with status 0; restart mode on-failure");
    return;
  }
  // Broken: it exited before it was ready, or within min_uptime of being ready. A stable run
  // resets the count of broken starts and restarts at once.
  const DeathKind kind = last_run_stable_ ? DeathKind::kStable : DeathKind::kBroken;
  const milliseconds delay = tracker_.on_death(kind, host_.uniform01());
  if (kind != DeathKind::kBroken) {
    start_or_back_off();
    return;
  }
  if (tracker_.gave_up()) {
    stopped("gave up: RestartPolicy::give_up_after", true);
    return;
  }
  schedule_start(delay, tracker_.backoff_cap(tracker_.broken_in_a_row()));
}

void ManagedProcess::start_or_back_off() {
  try {
    launch_run();
  } catch (const Error& e) {
    const auto* system = dynamic_cast<const SystemError*>(&e);
    emit(SupervisorEvent::Kind::SpawnFailed, e.what(), system != nullptr ? system->code() : 0);
    const milliseconds delay = tracker_.on_death(DeathKind::kBroken, host_.uniform01());
    if (tracker_.gave_up()) {
      transition(ProgramState::Stopped);
      emit(SupervisorEvent::Kind::Stopped, "gave up: RestartPolicy::give_up_after", 0, true);
      call_stop_waiters();
      return;
    }
    schedule_start(delay, tracker_.backoff_cap(tracker_.broken_in_a_row()));
  }
}

void ManagedProcess::schedule_start(milliseconds delay, milliseconds cap) {
  const bool crash_loop = tracker_.crash_looping();
  transition(crash_loop ? ProgramState::CrashLoop : ProgramState::Backoff);
  SupervisorEvent event;
  event.kind = crash_loop ? SupervisorEvent::Kind::CrashLoop : SupervisorEvent::Kind::Backoff;
  event.program = spec_.name;
  event.instance = instance_;
  event.name = name_;
  event.delay = delay;
  event.delay_cap = cap;
  event.broken_in_a_row = tracker_.broken_in_a_row();
  host_.emit(std::move(event));
  backoff_timer_ = host_.loop->after(delay, [this] {
    backoff_timer_ = 0;
    start_or_back_off();
  });
}

}  // namespace procpool::detail
