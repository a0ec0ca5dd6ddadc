#include "pool_core.hpp"

#include <sys/epoll.h>    // epoll_create1
#include <sys/eventfd.h>  // eventfd_write

#include <algorithm>  // std::max
#include <cerrno>     // errno
#include <chrono>     // durations

#include "epoll_tags.hpp"
#include "pool_options_check.hpp"
#include "restart_tracker.hpp"

namespace procpool::detail {
using State = WorkerSlot::State;

PoolCore::PoolCore(PoolOptions options)
    : options_(std::move(options)),
      min_workers_(default_min_workers(options_)),
      max_workers_(options_.max_workers == 0 ? min_workers_ : options_.max_workers) {
  validate_pool_options(options_, min_workers_, max_workers_);
  if (options_.shared_memory_size != 0) {
    try {
      shared_ = SharedRegion::create(options_.shared_memory_size);
    } catch (const Error& e) {
      throw Error(std::string("procpool::Pool: shared_memory_size ") +
                  std::to_string(options_.shared_memory_size) + ": " + e.what());
    }
  }
  for (const RegionSpec& spec : options_.regions) {
    try {
      regions_.emplace_back(spec.name, SharedRegion::create(spec.size));
    } catch (const Error& e) {
      std::string what = "procpool::Pool: region \"";
      what.append(spec.name).append("\" of ").append(std::to_string(spec.size));
      what.append(" bytes: ").append(e.what());
      throw Error(what);
    }
  }
  try {
    stdout_sinks_ = SinkSet::make(options_.worker_stdout);
    stderr_sinks_ = SinkSet::make(options_.worker_stderr);
  } catch (const SystemError& e) {
    throw SystemError(e.code(), std::string("procpool::Pool: worker output: ") + e.what());
  }
  // One file for both streams must be one writer: two would each rotate it on their own.
  if (!options_.worker_stderr.file.empty() &&
      options_.worker_stderr.file == options_.worker_stdout.file) {
    stderr_sinks_->file = stdout_sinks_->file;
  }
  // Slots do not move (channels map rings). One more than max_workers: a recycled worker's
  // replacement starts before it stops (recycling.cpp).
  slots_ = std::vector<WorkerSlot>(max_workers_ + 1);
  for (unsigned i = 0; i < slots_.size(); ++i) {
    slots_[i].index = i;
    slots_[i].process.restart = RestartTracker(options_.restart);
  }
  epoll_fd_.reset(::epoll_create1(EPOLL_CLOEXEC));
  if (!epoll_fd_) throw_errno(errno, "procpool::Pool: epoll_create1");
  kick_fd_ = make_eventfd();
  epoll_add(epoll_fd_.get(), kick_fd_.get(), kEpollKick);
  deliveries_.reserve(256);
}

PoolCore::~PoolCore() {
  shutdown();  // never on the supervisor thread or in a callback: see destroy()
  {
    // A thread whose callback dropped the last reference may still be on its way out.
    std::unique_lock lock(mu_);
    changed_.wait(lock, [&] { return callers_inside_ == 0; });
  }
}

void PoolCore::start() {
  thread_ = std::thread([this] { run_loop(); });
  started_ = true;  // before the pool is shared with any other thread: never written again
  std::unique_lock lock(mu_);
  // The supervisor thread enforces every start-up bound (startup_timeout, and a crash loop
  // fails start-up), so this wait ends; the outer bound only guards against a bug there.
  const unsigned tries = std::max(1u, options_.restart.crash_loop_after) + 1;
  const auto bound = options_.startup_timeout * tries + options_.restart.max_backoff * tries +
                     std::chrono::seconds(10);
  const bool settled = changed_.wait_for(lock, bound, [&] {
    if (failure_) return true;
    std::size_t ready = 0;
    for (const WorkerSlot& slot : slots_) ready += slot.state() == State::kReady;
    return ready >= min_workers_;
  });
  started_up_ = true;
  if (!failure_ && !settled) fail_pool_locked("workers did not become READY");
  if (failure_) {
    const std::string message = *failure_;
    lock.unlock();
    shutdown();
    throw Error("procpool::Pool: " + message);
  }
}

void PoolCore::shutdown() {
  std::unique_lock lock(mu_);
  if (!started_) return;
  if (!stopping_) {
    accepting_ = false;
    stopping_ = true;
    shutdown_deadline_ = Clock::now() + options_.shutdown_grace;
    kick();
  }
  // From one of the pool's callbacks, waiting would wait for that callback (or, on the pool's
  // own thread, for this thread): the stop goes on once the callback returns.
  if (in_callback() || on_supervisor_thread()) return;
  join_supervisor(lock);
}

void PoolCore::terminate() {
  std::unique_lock lock(mu_);
  if (!started_) return;
  if (!terminating_ && !stopped_) {
    terminating_ = true;
    accepting_ = false;
    stopping_ = true;
    shutdown_deadline_ = Clock::now();
    queue_.drain([&](std::uint32_t index) {
      resolve_locked(index, {},
                     TaskError(TaskError::Kind::ShuttingDown,
                               "pool terminated (Pool::terminate) before the task could run"));
      free_task_locked(index);
    });
    for (WorkerSlot& slot : slots_) {
      if (slot.live()) kill_locked(slot, "killed by Pool::terminate()", KillCause::kStop);
    }
    kick();
    changed_.notify_all();
  }
  deliver(lock);
  if (in_callback() || on_supervisor_thread()) return;  // as in shutdown()
  join_supervisor(lock);
}

// Waits until the supervisor thread has stopped, then joins it (once, whichever thread gets
// here first; the others wait for that join to finish).
void PoolCore::join_supervisor(std::unique_lock<std::mutex>& lock) {
  if (on_supervisor_thread()) {  // it would wait for itself
    lock.unlock();
    return;
  }
  changed_.wait(lock, [&] { return stopped_; });
  lock.unlock();
  std::call_once(joined_, [&] { thread_.join(); });
}

std::span<std::byte> PoolCore::region(std::string_view name) const {
  if (const SharedRegion* region = find_region(regions_, name)) return region->bytes();
  std::string known;
  for (const auto& region : regions_) known.append(known.empty() ? "" : ", ").append(region.first);
  std::string what = "procpool::Pool::region: no region named \"";
  what.append(name).append("\" (PoolOptions::regions has ");
  what.append(known.empty() ? std::string("none") : known).append(")");
  throw Error(what);
}

void PoolCore::kick() const noexcept { ::eventfd_write(kick_fd_.get(), 1); }

void PoolCore::wake_for_locked(Clock::time_point deadline) noexcept {
  if (on_supervisor_thread()) return;  // it computes its timers before it sleeps
  external_deadline_ = std::min(external_deadline_, deadline);
  if (deadline < planned_wake_) kick();
}

std::string PoolCore::handler_name_locked(std::uint32_t handler) const {
  return handlers_.name(handler);
}

std::string PoolCore::describe_slot(const WorkerSlot& slot) const {
  return "worker " + std::to_string(slot.index) + " (pid " + std::to_string(slot.pid()) + ")";
}

void PoolCore::fail_pool_locked(std::string message) {
  if (failure_) return;
  failure_ = std::move(message);
  accepting_ = false;
  stopping_ = true;
  shutdown_deadline_ = Clock::now();
  queue_.drain([&](std::uint32_t index) {
    resolve_locked(index, {}, TaskError(TaskError::Kind::PoolFailed, "pool failed: " + *failure_));
    free_task_locked(index);
  });
  changed_.notify_all();
}

std::size_t PoolCore::live_slots_locked() const {
  std::size_t live = 0;
  for (const WorkerSlot& slot : slots_) live += slot.live();
  return live;
}

std::vector<std::string> PoolCore::handlers() const {
  std::lock_guard lock(mu_);
  return handlers_.names();
}

}  // namespace procpool::detail
