#include "pool_core.hpp"

#include <fcntl.h>        // pipe2, O_CLOEXEC
#include <signal.h>       // SIGKILL
#include <sys/syscall.h>  // SYS_pidfd_send_signal
#include <sys/wait.h>     // waitpid
#include <unistd.h>       // syscall

#include <cerrno>  // errno codes
#include <string>  // messages

#include "adaptive_depth.hpp"
#include "epoll_tags.hpp"
#include "pool_clock.hpp"
#include "procpool/detail/launcher.hpp"
#include "procpool/wire_format.hpp"
#include "procpool/worker_environment.hpp"

namespace procpool::detail {
using State = WorkerSlot::State;

// Releases what a spawn that failed part way had set up.
void PoolCore::undo_spawn_locked(WorkerSlot& slot, UniqueFd (&stderr_pipe)[2]) {
  stderr_pipe[0].reset();
  stderr_pipe[1].reset();
  slot.channel.reset();
  if (slot.pidfd) {  // launched, then registering it failed: do not leave it running
    ::syscall(SYS_pidfd_send_signal, slot.pidfd.get(), SIGKILL, nullptr, 0);
    ::waitpid(slot.pid, nullptr, 0);
    slot.pidfd.reset();
    slot.stderr_fd.reset();
    slot.pid = -1;
  }
}

void PoolCore::spawn_locked(WorkerSlot& slot) {
  const auto now = Clock::now();
  last_spawn_ = now;
  SegmentConfig config;
  config.to_worker_capacity = options_.ring_capacity;
  config.to_supervisor_capacity = options_.ring_capacity;
  config.heartbeat_interval_ms = static_cast<std::uint32_t>(options_.heartbeat_interval.count());
  UniqueFd stderr_pipe[2];
  try {
    slot.channel.emplace(config, ++next_incarnation_, options_.max_payload, options_.worker_data);
    const WorkerChannel& channel = *slot.channel;
    int pipe_fds[2];
    if (::pipe2(pipe_fds, O_CLOEXEC) != 0) throw_errno(errno, "pipe2");
    stderr_pipe[0].reset(pipe_fds[0]);
    stderr_pipe[1].reset(pipe_fds[1]);
    LaunchSpec spec;
    spec.executable = options_.executable;
    spec.args = options_.args;
    spec.env = options_.env;
    spec.env.emplace_back(kSegmentFdEnv, std::to_string(channel.segment_fd()));
    spec.env.emplace_back(kDoorbellFdEnv, std::to_string(channel.doorbell_fd()));
    spec.inherit_fds = {channel.segment_fd(), channel.doorbell_fd()};
    if (shared_.fd() >= 0) {
      spec.env.emplace_back(kSharedFdEnv, std::to_string(shared_.fd()));
      spec.inherit_fds.push_back(shared_.fd());
    }
    spec.stderr_fd = stderr_pipe[1].get();
    spec.rlimit_data = options_.max_rss_hard;
    const LaunchedProcess process = launch(spec);
    stderr_pipe[1].reset();
    slot.pid = process.pid;
    slot.pidfd.reset(process.pidfd);
    slot.stderr_fd = std::move(stderr_pipe[0]);
    ::fcntl(slot.stderr_fd.get(), F_SETFL, O_NONBLOCK);
    epoll_add(epoll_fd_.get(), slot.pidfd.get(), kEpollPidfd | slot.index);
    epoll_add(epoll_fd_.get(), slot.stderr_fd.get(), kEpollStderr | slot.index);
    epoll_add(epoll_fd_.get(), channel.doorbell_fd(), kEpollDoorbell | slot.index);
  } catch (const SystemError& e) {
    undo_spawn_locked(slot, stderr_pipe);
    spawn_failed_locked(slot, e.what(), e.code());
    return;
  } catch (const Error& e) {
    undo_spawn_locked(slot, stderr_pipe);
    spawn_failed_locked(slot, e.what(), 0);
    return;
  }
  slot.incarnation = next_incarnation_;
  slot.set_state(State::kStarting);
  slot.started = slot.last_active = now;
  slot.started_unix_s = unix_now_s();
  slot.deadline = now + options_.startup_timeout;
  slot.dispatched = slot.tasks_done = slot.tasks_failed = 0;
  slot.killed = false;
  slot.last_answered_id = 0;
  slot.kill_cause = KillCause::kUnhealthy;
  slot.kill_reason.clear();
  slot.violation = ProtocolViolation::None;
  slot.timed_out_task = WorkerSlot::kNoTask;
  slot.control_lied = false;
  slot.service_ns = 0;
  slot.depth = AdaptiveDepth::kUnmeasured;
  slot.next_scan = Clock::time_point::max();
  slot.next_memory_check = now;
  slot.memory_exceeded = false;
  slot.stderr_tail = StderrTail();
  slot.recycle_after = 0;
  if (options_.max_tasks_per_worker != 0) {
    const std::uint64_t base = options_.max_tasks_per_worker;
    slot.recycle_after = base + rng_() % (base / 10 + 1);
  }
  PoolEvent started;
  started.kind = PoolEvent::Kind::WorkerStarted;
  started.pid = slot.pid;
  emit_locked(slot, std::move(started));
}

namespace {

// A launch error that the next attempt cannot fix by itself: the program is missing, not
// executable, or not a program. Everything else (EMFILE, ENFILE, EAGAIN from fork, ENOMEM,
// ETXTBSY while a binary is being replaced) may pass.
bool permanent_spawn_error(int code) noexcept {
  switch (code) {
    case 0:  // not a system call's failure: a bad spec (path, argument, environment)
    case ENOENT:
    case EACCES:
    case EPERM:
    case ENOEXEC:
    case EISDIR:
    case ENOTDIR:
    case ELOOP:
    case ENAMETOOLONG:
      return true;
    default:
      return false;
  }
}

}  // namespace

// Starting a worker failed. While the pool is being constructed, a permanent error fails it at
// once (the constructor throws the reason); otherwise the slot backs off and tries again, as
// after a broken start: a binary replaced non-atomically during a redeploy, or a moment of fd
// or process-table exhaustion, must not stop the pool or its healthy workers.
void PoolCore::spawn_failed_locked(WorkerSlot& slot, const char* reason, int code) {
  const std::string what = std::string("cannot start worker: ") + reason;
  PoolEvent failed;
  failed.kind = PoolEvent::Kind::SpawnFailed;
  failed.message = what;
  failed.error_code = code;
  emit_locked(slot, std::move(failed));
  slot.pid = -1;
  if (!started_up_ && permanent_spawn_error(code)) {
    fail_pool_locked(what);
    slot.set_state(State::kEmpty);
    return;
  }
  schedule_restart_locked(slot, DeathKind::kBroken,
                          "worker " + std::to_string(slot.index) + ": " + what, Clock::now());
}

}  // namespace procpool::detail
