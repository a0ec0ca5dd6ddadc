#include "pool_core.hpp"

#include "pool_clock.hpp"
#include "process_status.hpp"

namespace procpool::detail {
using State = WorkerSlot::State;

PoolMetrics PoolCore::metrics() const {
  std::lock_guard lock(mu_);
  PoolMetrics m;
  m.state = failure_    ? PoolMetrics::State::Failed
            : stopped_  ? PoolMetrics::State::Stopped
            : stopping_ ? PoolMetrics::State::ShuttingDown
                        : PoolMetrics::State::Running;
  const auto now = Clock::now();
  const double unix_s = unix_now_s();
  for (const WorkerSlot& slot : slots_) {
    if (slot.state() == State::kEmpty) continue;
    WorkerMetrics w;
    w.slot = slot.index;
    w.incarnation = slot.process.incarnation;
    w.pid = slot.live() ? slot.pid() : 0;
    w.state = slot.process.metrics_state();
    w.started_unix_s = slot.process.started_unix_s;
    w.uptime_s = slot.live() ? seconds_between(slot.process.started, now) : 0;
    w.idle_s = seconds_between(slot.load.last_active, now);
    w.tasks_done = slot.load.tasks_done;
    w.tasks_failed = slot.load.tasks_failed;
    w.slot_tasks_done = slot.load.slot_tasks_done;
    w.slot_tasks_failed = slot.load.slot_tasks_failed;
    w.last_active_unix_s = unix_s - seconds_between(slot.load.last_active, now);
    w.consecutive_failures = static_cast<unsigned>(slot.process.restart.broken_in_a_row());
    w.inflight = static_cast<unsigned>(slot.load.inflight.size());
    w.pipeline_depth = options_.pipeline_depth != 0 ? options_.pipeline_depth : slot.load.depth;
    w.restarts = slot.process.restarts;
    if (w.pid > 0) {
      const ProcessUsage usage = read_process_usage(w.pid);
      w.rss_bytes = usage.rss_bytes;
      w.cpu_s = usage.cpu_s;
    }
    m.workers.push_back(std::move(w));
  }
  m.queued = queue_.size();
  m.running = running_;
  m.completed = completed_;
  m.failed = failed_;
  m.retried = retried_;
  m.coalesced = coalesced_;
  m.restarts = restarts_;
  m.queue_wait = queue_wait_.summary();
  m.run_time = run_time_.summary();
  return m;
}

}  // namespace procpool::detail
