#include "managed_process.hpp"

#include <signal.h>     // SIGKILL
#include <sys/epoll.h>  // EPOLLIN

#include <algorithm>  // std::min
#include <utility>    // std::move

#include "group_usage.hpp"
#include "procpool/error.hpp"
#include "procpool/supervisor.hpp"

namespace procpool::detail {
namespace {

using Clock = EventLoop::Clock;
using std::chrono::duration_cast;
using std::chrono::milliseconds;

// The transitions of docs/supervisor.md, "States"; anything else is a bug in this file.
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
      return from == S::Exited || from == S::Backoff || from == S::CrashLoop || from == S::Stopped;
  }
  return false;
}

}  // namespace

ManagedProcess::ManagedProcess(ProcessHost& host, const Program& program, unsigned instance)
    : host_(host),
      program_(program),
      spec_(program.spec),
      instance_(instance),
      name_(program.spec.name + ":" + std::to_string(instance)),
      tracker_(program.spec.restart) {}

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
  // Shutdown waits for every instance to be idle; this may be the step that made it so.
  if (to == ProgramState::Stopped) host_.changed();
}

void ManagedProcess::emit(SupervisorEvent::Kind kind, const std::string& message, int error_code) {
  SupervisorEvent event;
  event.kind = kind;
  event.program = spec_.name;
  event.instance = instance_;
  event.name = name_;
  event.pid = run_ ? run_->child.pid() : 0;
  event.broken_in_a_row = tracker_.broken_in_a_row();
  event.message = message;
  event.error_code = error_code;
  if (kind == SupervisorEvent::Kind::Exited && last_exit_) {
    event.exit = last_exit_;
    event.pid = last_exit_->pid;
  }
  host_.emit(std::move(event));
}

// --- starting --------------------------------------------------------------------------------

void ManagedProcess::launch_run() {
  auto run = std::make_unique<Run>();
  run->out =
      std::make_unique<OutputCapture>(program_.stdout_sinks, name_, host_.count_callback_error);
  run->err =
      std::make_unique<OutputCapture>(program_.stderr_sinks, name_, host_.count_callback_error);
  LaunchSpec launch;
  launch.executable = spec_.command;
  launch.args = spec_.args;
  launch.env = spec_.env;
  // Always ours, so a program never notifies the service manager that runs the supervisor.
  launch.env.emplace_back("NOTIFY_SOCKET", host_.notify_path);
  if (spec_.watchdog.count() > 0) {
    launch.env.emplace_back("WATCHDOG_USEC", std::to_string(spec_.watchdog.count() * 1000));
    launch.pid_env_name = "WATCHDOG_PID";
  }
  launch.stdout_fd = run->out->write_fd();
  launch.stderr_fd = run->err->write_fd();
  launch.working_directory = spec_.working_directory;
  run->child = ChildProcess::launch(launch);
  run->out->close_write_end();
  run->err->close_write_end();
  run->started_at = Clock::now();
  ++starts_;

  const int pid = run->child.pid();
  host_.claim_pid(pid, this);
  host_.loop->watch(run->child.pidfd(), EPOLLIN, [this](std::uint32_t) { on_main_exit(); });
  watch_output(*run->out);
  watch_output(*run->err);
  run_ = std::move(run);
  transition(ProgramState::Starting);
  emit(SupervisorEvent::Kind::Started);

  run_->health_timer = host_.loop->after(spec_.health_interval, [this] { health_check(); });
  switch (spec_.readiness) {
    case ReadinessMode::Started:
      became_ready();
      return;
    case ReadinessMode::TcpPort:
      run_->probe.emplace(spec_.ready_port);
      run_->probe_timer = host_.loop->after(milliseconds(0), [this] { probe_tcp(); });
      break;
    case ReadinessMode::Notify:
      break;
  }
  run_->start_timer = host_.loop->after(spec_.start_timeout, [this] {
    run_->start_timer = 0;
    if (state_ == ProgramState::Starting) kill_run(KillReason::StartTimeout, true);
  });
}

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
    if (state_ != ProgramState::Stopped) transition(ProgramState::Stopped);
    emit(SupervisorEvent::Kind::SpawnFailed, e.what(), code);
    throw SupervisorError(SupervisorError::Kind::SpawnFailed, name_ + ": " + e.what(), 0, code);
  }
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
      emit(SupervisorEvent::Kind::Stopped, "gave up: RestartPolicy::give_up_after");
      call_stop_waiters();
      return;
    }
    schedule_start(delay, tracker_.backoff_cap(tracker_.broken_in_a_row()));
  }
}

void ManagedProcess::became_ready() {
  host_.loop->cancel(run_->start_timer);
  host_.loop->cancel(run_->probe_timer);
  run_->start_timer = run_->probe_timer = 0;
  run_->ready_at = Clock::now();
  tracker_.on_ready(*run_->ready_at);
  transition(ProgramState::Ready);
  emit(SupervisorEvent::Kind::Ready);
  if (spec_.watchdog.count() > 0) arm_watchdog();
}

void ManagedProcess::probe_tcp() {
  run_->probe_timer = 0;
  if (state_ != ProgramState::Starting) return;
  if (run_->probe->accepts()) {
    became_ready();
    return;
  }
  // Quick at first (most servers listen within milliseconds), then no more than twice a second.
  run_->probe_interval = std::min(run_->probe_interval * 2, milliseconds(500));
  run_->probe_timer = host_.loop->after(run_->probe_interval, [this] { probe_tcp(); });
}

// --- watching --------------------------------------------------------------------------------

void ManagedProcess::arm_watchdog() {
  run_->last_ping = Clock::now();
  if (run_->watchdog_timer == 0) watchdog_after(spec_.watchdog);
}

void ManagedProcess::watchdog_after(milliseconds delay) {
  run_->watchdog_timer = host_.loop->after(delay, [this] {
    if (!run_) return;
    run_->watchdog_timer = 0;
    const Clock::time_point due = run_->last_ping + spec_.watchdog;
    const Clock::time_point now = Clock::now();
    if (now < due) {
      // Pinged since this timer was set: wait for the rest of the new period (rounded up, so
      // the timer cannot fire early and spin).
      watchdog_after(std::chrono::ceil<milliseconds>(due - now));
      return;
    }
    kill_run(KillReason::Watchdog, false);
  });
}

void ManagedProcess::on_notify(const NotifyMessage& message) {
  if (!run_) return;
  if (message.status) run_->status_text = *message.status;
  if (message.ready && state_ == ProgramState::Starting &&
      spec_.readiness == ReadinessMode::Notify) {
    became_ready();
  }
  if (message.watchdog && state_ == ProgramState::Ready && spec_.watchdog.count() > 0) {
    arm_watchdog();
  }
  if (message.stopping && (state_ == ProgramState::Ready || state_ == ProgramState::Starting)) {
    // It is shutting down on its own: no more watchdog, and no more than stop_grace to finish.
    cancel_run_timers();
    transition(ProgramState::Stopping);
    run_->kill_timer = host_.loop->after(spec_.stop_grace, [this] {
      if (!run_) return;
      run_->kill_timer = 0;
      run_->child.signal_group(SIGKILL);
    });
  }
}

void ManagedProcess::health_check() {
  run_->health_timer = 0;
  const std::uint64_t rss = read_group_usage(run_->child.pid()).rss_bytes;
  if (spec_.memory_hard_limit != 0 && rss > spec_.memory_hard_limit) {
    kill_run(KillReason::MemoryHard, false);
  } else if (spec_.memory_soft_limit != 0 && rss > spec_.memory_soft_limit &&
             state_ != ProgramState::Stopping) {
    kill_run(KillReason::MemorySoft, true);
  }
  if (run_) {
    run_->health_timer = host_.loop->after(spec_.health_interval, [this] { health_check(); });
  }
}

void ManagedProcess::watch_output(OutputCapture& capture) {
  host_.loop->watch(capture.read_fd(), EPOLLIN, [this, &capture](std::uint32_t) {
    if (capture.read_some()) return;
    close_capture(capture);
    // EOF: the last writer of an exited run may be gone now.
    for (auto& remains : remains_) {
      if (remains->out->done() && remains->err->done() &&
          !group_has_members_besides(remains->child.pid(), remains->child.pid())) {
        finish_remains(remains.get());
        return;
      }
    }
  });
}

// Unwatched before it is closed, always: see OutputCapture::read_some.
void ManagedProcess::close_capture(OutputCapture& capture) {
  if (capture.done()) return;
  host_.loop->unwatch(capture.read_fd());
  capture.finish();
}

// --- stopping and exits ----------------------------------------------------------------------

void ManagedProcess::cancel_run_timers() {
  if (!run_) return;
  for (EventLoop::TimerId* id : {&run_->start_timer, &run_->watchdog_timer, &run_->health_timer,
                                 &run_->probe_timer, &run_->kill_timer}) {
    host_.loop->cancel(*id);
    *id = 0;
  }
}

void ManagedProcess::kill_run(KillReason reason, bool graceful) {
  if (!run_) return;
  if (run_->kill_reason == KillReason::None) run_->kill_reason = reason;
  for (EventLoop::TimerId* id : {&run_->start_timer, &run_->watchdog_timer, &run_->probe_timer}) {
    host_.loop->cancel(*id);
    *id = 0;
  }
  if (state_ != ProgramState::Stopping) transition(ProgramState::Stopping);
  if (!graceful) {
    run_->child.signal_group(SIGKILL);
    run_->child.signal(SIGKILL);
    return;
  }
  if (!run_->child.signal_group(spec_.stop_signal)) run_->child.signal(spec_.stop_signal);
  if (run_->kill_timer == 0) {
    run_->kill_timer = host_.loop->after(spec_.stop_grace, [this] {
      if (!run_) return;
      run_->kill_timer = 0;
      run_->child.signal_group(SIGKILL);
      run_->child.signal(SIGKILL);
    });
  }
}

void ManagedProcess::on_main_exit() {
  const std::optional<ExitStatus> status = run_->child.peek_exit();
  if (!status) return;
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
  report.exit_code = status->code;
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
  remains->child = std::move(run_->child);
  remains->out = std::move(run_->out);
  remains->err = std::move(run_->err);
  run_.reset();
  bury(*remains_.emplace_back(std::move(remains)));

  transition(ProgramState::Exited);
  emit(SupervisorEvent::Kind::Exited);
  decide_after_exit(clean_own_exit);
}

// KillMode=control-group: the main process is gone, so the rest of its group gets the stop
// signal now and SIGKILL after stop_grace. The zombie main process is reaped only then: until
// its reap it keeps the pgid from being reused, so kill(-pgid) cannot hit a stranger.
void ManagedProcess::bury(Remains& remains) {
  const int pid = remains.child.pid();
  if (!group_has_members_besides(pid, pid)) {
    finish_remains(&remains);
    return;
  }
  remains.child.signal_group(spec_.stop_signal);
  Remains* raw = &remains;
  remains.kill_timer = host_.loop->after(spec_.stop_grace, [this, raw] {
    raw->kill_timer = 0;
    finish_remains(raw);
  });
}

void ManagedProcess::finish_remains(Remains* remains) {
  host_.loop->cancel(remains->kill_timer);
  remains->child.signal_group(SIGKILL);
  remains->child.try_reap();
  close_capture(*remains->out);
  close_capture(*remains->err);
  std::erase_if(remains_, [remains](const auto& r) { return r.get() == remains; });
  call_stop_waiters();
  host_.changed();
}

void ManagedProcess::decide_after_exit(bool clean_own_exit) {
  const auto stopped = [this](const std::string& why) {
    transition(ProgramState::Stopped);
    emit(SupervisorEvent::Kind::Stopped, why);
    call_stop_waiters();
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
    stopped("gave up: RestartPolicy::give_up_after");
    return;
  }
  schedule_start(delay, tracker_.backoff_cap(tracker_.broken_in_a_row()));
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

void ManagedProcess::stop(std::function<void()> done) {
  if (done) stop_waiters_.push_back(std::move(done));
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
      kill_run(KillReason::Stop, true);
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

void ManagedProcess::call_stop_waiters() {
  if (!idle() || stop_waiters_.empty()) return;
  auto waiters = std::move(stop_waiters_);
  stop_waiters_.clear();
  for (auto& waiter : waiters) waiter();
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
