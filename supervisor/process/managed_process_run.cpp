// ManagedProcess, one run from its launch to its exit: launching, readiness (notify, TCP),
// the watchdog, health checks and the output pipes. The exit and what follows it are in
// managed_process_exit.cpp.

#include <sys/epoll.h>  // EPOLLIN

#include <algorithm>  // std::min
#include <utility>    // std::move

#include "group_usage.hpp"
#include "managed_process.hpp"

namespace procpool::detail {
namespace {

using Clock = EventLoop::Clock;
using std::chrono::milliseconds;

}  // namespace

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
  // Which instance it is (supervisord's process_num, PM2's NODE_APP_INSTANCE): a port base
  // plus the instance, say.
  launch.env.emplace_back("PROCPOOL_PROGRAM", spec_.name);
  launch.env.emplace_back("PROCPOOL_INSTANCE", std::to_string(instance_));
  if (spec_.watchdog.count() > 0) {
    launch.env.emplace_back("WATCHDOG_USEC", std::to_string(spec_.watchdog.count() * 1000));
    launch.pid_env_name = "WATCHDOG_PID";
  }
  launch.umask = spec_.umask;
  if (program_.credentials) {
    launch.set_credentials = true;
    launch.uid = program_.credentials->uid;
    launch.gid = program_.credentials->gid;
    launch.groups = program_.credentials->groups;
  }
  launch.stdout_fd = run->out->write_fd();
  launch.stderr_fd = run->err->write_fd();
  launch.working_directory = spec_.working_directory;
  run->child = ChildProcess::launch(launch);

  // From here on a child runs: whatever throws before it is tracked must not leave it running
  // unwatched (nobody would ever reap or stop it).
  const int pid = run->child.pid();
  bool claimed = false;
  try {
    run->out->close_write_end();
    run->err->close_write_end();
    run->out->set_pid(pid);
    run->err->set_pid(pid);
    run->started_at = Clock::now();
    host_.claim_pid(pid, this);
    claimed = true;
    host_.loop->watch(run->child.pidfd(), EPOLLIN, [this](std::uint32_t) { on_main_exit(); });
    watch_output(*run->out);
    watch_output(*run->err);
    if (spec_.readiness == ReadinessMode::TcpPort) {
      // With several instances on one port, the one that listens must be this one
      // (docs/supervisor.md, Readiness).
      // Always this run's own listener: another instance, or the old run of this one during
      // a rolling update, may hold the port too.
      run->probe.emplace(spec_.ready_port, pid);
    }
  } catch (...) {
    abandon_launch(*run, claimed);
    throw;
  }
  run->id = ++last_run_id_;
  ++starts_;
  run_ = std::move(run);
  transition(ProgramState::Starting);
  emit(SupervisorEvent::Kind::Started);

  run_->health_timer = host_.loop->after(spec_.health_interval, [this] { health_check(); });
  switch (spec_.readiness) {
    case ReadinessMode::Started:
      became_ready();
      return;
    case ReadinessMode::TcpPort:
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

// A launch that failed after the fork: the child is SIGKILLed and reaped, and nothing of it
// stays watched or claimed. Its pipes close with `run`.
void ManagedProcess::abandon_launch(Run& run, bool claimed) noexcept {
  for (const int fd : {run.child.pidfd(), run.out->read_fd(), run.err->read_fd()}) {
    host_.loop->unwatch(fd);  // a no-op for an fd that was not watched yet
  }
  run.child.kill_and_reap();
  if (claimed) {
    try {
      host_.claim_pid(run.child.pid(), nullptr);
    } catch (...) {  // the error being thrown says what went wrong; this one adds nothing
    }
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
    // It is shutting down on its own: no more watchdog, and no more than stop_grace to finish,
    // for it and the rest of its group.
    cancel_run_timers();
    transition(ProgramState::Stopping);
    run_->kill_deadline = Clock::now() + spec_.stop_grace;
    arm_kill_timer();
  }
}

void ManagedProcess::health_check() {
  run_->health_timer = 0;
  const std::uint64_t rss = read_group_usage(run_->child.pid()).rss_bytes;
  if (spec_.memory_hard_limit != 0 && rss > spec_.memory_hard_limit) {
    kill_run(KillReason::MemoryHard, false);
  } else if (spec_.memory_soft_limit != 0 && rss > spec_.memory_soft_limit &&
             state_ != ProgramState::Stopping) {
    // Once ready, its replacement first, when the supervisor can start one: no gap in service.
    if (state_ != ProgramState::Ready || !host_.recycle || !host_.recycle(*this)) {
      kill_run(KillReason::MemorySoft, true);
    }
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

}  // namespace procpool::detail
