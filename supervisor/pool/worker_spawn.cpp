#include "pool_core.hpp"

#include <cerrno>  // errno codes
#include <memory>  // output captures
#include <string>  // messages

#include "adaptive_depth.hpp"
#include "epoll_tags.hpp"
#include "pool_clock.hpp"
#include "procpool/detail/launcher.hpp"
#include "procpool/region_list.hpp"
#include "procpool/wire_format.hpp"
#include "procpool/worker_environment.hpp"

namespace procpool::detail {
using State = WorkerSlot::State;

// Releases what a spawn that failed part way had set up. Closing the fds (the captures, as
// the caller's locals go) also takes them out of the epoll set: nothing else holds them once
// the child is reaped.
void PoolCore::undo_spawn_locked(WorkerSlot& slot, ChildProcess& child) {
  child.kill_and_reap();  // launched, then registering it failed: do not leave it running
  slot.channel.reset();
}

void PoolCore::spawn_locked(WorkerSlot& slot) {
  const auto now = Clock::now();
  last_spawn_ = now;
  SegmentConfig config;
  config.to_worker_capacity = options_.ring_capacity;
  config.to_supervisor_capacity = options_.ring_capacity;
  config.heartbeat_interval_ms = static_cast<std::uint32_t>(options_.heartbeat_interval.count());
  ChildProcess child;
  std::unique_ptr<OutputCapture> out, err;
  try {
    slot.channel.emplace(config, ++next_incarnation_, options_.max_payload, options_.worker_data);
    const WorkerChannel& channel = *slot.channel;
    const std::string instance = "worker:" + std::to_string(slot.index);
    // An output callback that throws is counted like a completion callback that does. It runs
    // on this thread with mu_ released (worker_output.cpp).
    auto count_error = [this] {
      std::lock_guard lock(mu_);
      ++callback_errors_;
    };
    out = std::make_unique<OutputCapture>(stdout_sinks_, instance, count_error);
    err = std::make_unique<OutputCapture>(stderr_sinks_, instance, count_error);
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
    if (!regions_.empty()) {
      RegionFds fds;
      for (const auto& [name, region] : regions_) {
        fds.emplace_back(name, region.fd());
        spec.inherit_fds.push_back(region.fd());
      }
      spec.env.emplace_back(kRegionsEnv, encode_region_list(fds));
    }
    spec.stdout_fd = out->write_fd();
    spec.stderr_fd = err->write_fd();
    spec.rlimit_data = options_.max_rss_hard;
    child = ChildProcess::launch(spec);
    out->close_write_end();  // the worker holds its own copies
    err->close_write_end();
    epoll_add(epoll_fd_.get(), child.pidfd(), kEpollPidfd | slot.index);
    epoll_add(epoll_fd_.get(), out->read_fd(), kEpollStdout | slot.index);
    epoll_add(epoll_fd_.get(), err->read_fd(), kEpollStderr | slot.index);
    epoll_add(epoll_fd_.get(), channel.doorbell_fd(), kEpollDoorbell | slot.index);
  } catch (const SystemError& e) {
    undo_spawn_locked(slot, child);
    spawn_failed_locked(slot, e.what(), e.code());
    return;
  } catch (const Error& e) {
    undo_spawn_locked(slot, child);
    spawn_failed_locked(slot, e.what(), 0);
    return;
  }
  slot.process.launched(std::move(child), std::move(out), std::move(err), next_incarnation_, now,
                        now + options_.startup_timeout, unix_now_s());
  std::uint64_t recycle_after = 0;  // never
  if (options_.max_tasks_per_worker != 0) {
    const std::uint64_t base = options_.max_tasks_per_worker;
    recycle_after = base + rng_() % (base / 10 + 1);
  }
  slot.load.new_run(now, recycle_after);
  PoolEvent started;
  started.kind = PoolEvent::Kind::WorkerStarted;
  started.at = now;  // the launch itself may take a while under load
  started.pid = slot.pid();
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
  if (!started_up_ && permanent_spawn_error(code)) {
    fail_pool_locked(what);
    slot.process.empty();
    return;
  }
  schedule_restart_locked(slot, DeathKind::kBroken,
                          "worker " + std::to_string(slot.index) + ": " + what, Clock::now());
}

}  // namespace procpool::detail
