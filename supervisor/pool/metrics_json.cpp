#include <boost/json.hpp>

#include "procpool/metrics.hpp"

namespace procpool {
namespace {

boost::json::object latency_json(const LatencySummary& s) {
  return {{"count", s.count},
          {"p50_us", s.p50_us},
          {"p90_us", s.p90_us},
          {"p99_us", s.p99_us},
          {"max_us", s.max_us}};
}

}  // namespace

std::string PoolMetrics::to_json() const {
  boost::json::array worker_list;
  for (const WorkerMetrics& w : workers) {
    worker_list.push_back(boost::json::object{
        {"slot", w.slot},
        {"incarnation", w.incarnation},
        {"pid", w.pid},
        {"state", std::string(to_string(w.state))},
        {"started_unix_s", w.started_unix_s},
        {"uptime_s", w.uptime_s},
        {"idle_s", w.idle_s},
        {"tasks_done", w.tasks_done},
        {"tasks_failed", w.tasks_failed},
        {"slot_tasks_done", w.slot_tasks_done},
        {"slot_tasks_failed", w.slot_tasks_failed},
        {"last_active_unix_s", w.last_active_unix_s},
        {"consecutive_failures", w.consecutive_failures},
        {"inflight", w.inflight},
        {"pipeline_depth", w.pipeline_depth},
        {"restarts", w.restarts},
        {"rss_bytes", w.rss_bytes},
        {"cpu_s", w.cpu_s},
    });
  }
  const boost::json::object root{
      {"state", std::string(to_string(state))},
      {"queued", queued},
      {"running", running},
      {"completed", completed},
      {"failed", failed},
      {"retried", retried},
      {"coalesced", coalesced},
      {"restarts", restarts},
      {"callback_errors", callback_errors},
      {"queue_wait", latency_json(queue_wait)},
      {"run_time", latency_json(run_time)},
      {"workers", std::move(worker_list)},
  };
  return boost::json::serialize(root);
}

}  // namespace procpool
