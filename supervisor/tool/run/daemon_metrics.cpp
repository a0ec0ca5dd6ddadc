// Daemon::metrics_text: the Prometheus exposition (docs/metrics.md). Labels are the program
// and its slot (the instance number), or the pool and its worker slot: never a pid, which
// changes at every restart and would make a new series each time.

#include <array>   // program states
#include <string>  // labels

#include "procpool/metrics.hpp"
#include "run/daemon.hpp"
#include "run/metrics_exposition.hpp"
#include "run/self_process.hpp"

namespace procpool::tool {
namespace {

using Type = MetricsExposition::Type;

constexpr std::array<ProgramState, 7> kProgramStates = {
    ProgramState::Stopped, ProgramState::Starting, ProgramState::Ready,    ProgramState::Stopping,
    ProgramState::Exited,  ProgramState::Backoff,  ProgramState::CrashLoop};

constexpr std::array<WorkerMetrics::State, 6> kWorkerStates = {
    WorkerMetrics::State::Starting, WorkerMetrics::State::Ready,   WorkerMetrics::State::Draining,
    WorkerMetrics::State::Stopping, WorkerMetrics::State::Backoff, WorkerMetrics::State::CrashLoop};

void program_metrics(MetricsExposition& out, const std::vector<ProcessStatus>& statuses) {
  struct Instance {
    const ProcessStatus* status;
    std::string slot;
  };
  std::vector<Instance> instances;
  for (const ProcessStatus& s : statuses) instances.push_back({&s, std::to_string(s.instance)});
  const auto each = [&](std::string_view name, Type type, std::string_view help, auto value) {
    out.family(name, type, help);
    for (const Instance& i : instances) {
      out.sample({{"program", i.status->program}, {"slot", i.slot}}, value(*i.status));
    }
  };
  each("procpool_program_up", Type::Gauge, "1 if the instance is ready, else 0.",
       [](const ProcessStatus& s) { return s.state == ProgramState::Ready ? 1.0 : 0.0; });
  out.family("procpool_program_state", Type::Gauge,
             "The instance's state: 1 for the one it is in, 0 for the others.");
  for (const Instance& i : instances) {
    for (const ProgramState state : kProgramStates) {
      out.sample({{"program", i.status->program}, {"slot", i.slot}, {"state", to_string(state)}},
                 i.status->state == state ? 1.0 : 0.0);
    }
  }
  each("procpool_program_restarts_total", Type::Counter,
       "Starts of the instance after its first (crashes, stops and starts by hand).",
       [](const ProcessStatus& s) { return static_cast<double>(s.restarts); });
  each("procpool_program_resident_memory_bytes", Type::Gauge,
       "Resident memory of the instance's process group.",
       [](const ProcessStatus& s) { return static_cast<double>(s.rss_bytes); });
  each("procpool_program_cpu_seconds_total", Type::Counter,
       "User and system CPU time of the instance's process group, this run.",
       [](const ProcessStatus& s) { return s.cpu_seconds; });
  each("procpool_program_uptime_seconds", Type::Gauge, "Time since the instance's current start.",
       [](const ProcessStatus& s) { return static_cast<double>(s.uptime.count()) / 1e3; });
}

void pool_metrics(MetricsExposition& out,
                  const std::vector<std::pair<std::string, PoolMetrics>>& pools) {
  const auto each = [&](std::string_view name, Type type, std::string_view help, auto value) {
    out.family(name, type, help);
    for (const auto& [pool, m] : pools) out.sample({{"pool", pool}}, value(m));
  };
  out.family("procpool_pool_workers", Type::Gauge, "The pool's worker processes, by state.");
  for (const auto& [pool, m] : pools) {
    for (const WorkerMetrics::State state : kWorkerStates) {
      double count = 0;
      for (const WorkerMetrics& w : m.workers) count += w.state == state ? 1 : 0;
      out.sample({{"pool", pool}, {"state", to_string(state)}}, count);
    }
  }
  each("procpool_pool_tasks_queued", Type::Gauge, "Tasks waiting for a worker.",
       [](const PoolMetrics& m) { return static_cast<double>(m.queued); });
  each("procpool_pool_tasks_running", Type::Gauge, "Tasks dispatched and not yet resolved.",
       [](const PoolMetrics& m) { return static_cast<double>(m.running); });
  each("procpool_pool_tasks_completed_total", Type::Counter, "Tasks resolved with a result.",
       [](const PoolMetrics& m) { return static_cast<double>(m.completed); });
  each("procpool_pool_tasks_failed_total", Type::Counter, "Tasks resolved with an error.",
       [](const PoolMetrics& m) { return static_cast<double>(m.failed); });
  each("procpool_pool_tasks_retried_total", Type::Counter,
       "Tasks dispatched again after their worker died.",
       [](const PoolMetrics& m) { return static_cast<double>(m.retried); });
  each("procpool_pool_worker_restarts_total", Type::Counter, "Workers replaced after dying.",
       [](const PoolMetrics& m) { return static_cast<double>(m.restarts); });
  const auto histogram = [&](std::string_view name, std::string_view help, auto latency) {
    out.family(name, Type::Histogram, help);
    for (const auto& [pool, m] : pools) {
      const LatencySummary& l = latency(m);
      out.histogram_us({{"pool", pool}}, LatencySummary::kBoundsUs, l.cumulative, l.sum_us,
                       l.count);
    }
  };
  histogram("procpool_pool_queue_wait_seconds", "Time from a task's submission to its dispatch.",
            [](const PoolMetrics& m) -> const LatencySummary& { return m.queue_wait; });
  histogram("procpool_pool_run_time_seconds", "Time from a task's dispatch to its result.",
            [](const PoolMetrics& m) -> const LatencySummary& { return m.run_time; });
  const auto per_slot = [&](std::string_view name, Type type, std::string_view help, auto value) {
    out.family(name, type, help);
    for (const auto& [pool, m] : pools) {
      for (const WorkerMetrics& w : m.workers) {
        out.sample({{"pool", pool}, {"slot", std::to_string(w.slot)}}, value(w));
      }
    }
  };
  per_slot("procpool_pool_worker_tasks_total", Type::Counter,
           "Tasks the slot's workers answered, over every incarnation.",
           [](const WorkerMetrics& w) {
             return static_cast<double>(w.slot_tasks_done + w.slot_tasks_failed);
           });
  per_slot("procpool_pool_worker_resident_memory_bytes", Type::Gauge,
           "Resident memory of the slot's worker process.",
           [](const WorkerMetrics& w) { return static_cast<double>(w.rss_bytes); });
  per_slot("procpool_pool_worker_cpu_seconds_total", Type::Counter,
           "User and system CPU time of the slot's current worker process.",
           [](const WorkerMetrics& w) { return w.cpu_s; });
}

void self_metrics(MetricsExposition& out) {
  const SelfProcess self = read_self_process();
  out.family("process_cpu_seconds_total", Type::Counter,
             "Total user and system CPU time spent in seconds.");
  out.sample({}, self.cpu_seconds);
  out.family("process_resident_memory_bytes", Type::Gauge, "Resident memory size in bytes.");
  out.sample({}, static_cast<double>(self.rss_bytes));
  out.family("process_virtual_memory_bytes", Type::Gauge, "Virtual memory size in bytes.");
  out.sample({}, static_cast<double>(self.virtual_bytes));
  out.family("process_start_time_seconds", Type::Gauge,
             "Start time of the process since unix epoch in seconds.");
  out.sample({}, self.start_unix_s);
  out.family("process_open_fds", Type::Gauge, "Number of open file descriptors.");
  out.sample({}, static_cast<double>(self.open_fds));
  out.family("process_max_fds", Type::Gauge, "Maximum number of open file descriptors.");
  out.sample({}, static_cast<double>(self.max_fds));
}

}  // namespace

std::string Daemon::metrics_text() const {
  View view;
  {
    const std::lock_guard lock(view_mutex_);
    view = view_;
  }
  const std::vector<ProcessStatus> statuses = supervisor_.status();
  std::vector<std::pair<std::string, PoolMetrics>> pools;
  for (const auto& [name, pool] : view.pools) pools.emplace_back(name, pool->metrics());

  MetricsExposition out;
  out.family("procpool_daemon_programs", Type::Gauge, "Programs in the daemon's config.");
  out.sample({}, static_cast<double>(view.programs));
  out.family("procpool_daemon_reloads_total", Type::Counter,
             "Reloads (procpool reload, SIGHUP), by result.");
  out.sample({{"result", "applied"}}, static_cast<double>(reloads_ok_.load()));
  out.sample({{"result", "failed"}}, static_cast<double>(reloads_failed_.load()));
  program_metrics(out, statuses);
  pool_metrics(out, pools);
  self_metrics(out);
  return out.text();
}

}  // namespace procpool::tool
