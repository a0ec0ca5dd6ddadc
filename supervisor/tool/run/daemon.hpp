#pragma once

// What `procpool run` runs: the config's programs under one procpool::Supervisor, started in
// dependency order (each once every program it depends on is ready), and its pools
// (procpool::Pool); stopped in reverse order (docs/config.md, docs/control.md).

#include <atomic>  // reload counts
#include <chrono>  // ensure_ready's deadline
#include <memory>  // pools
#include <mutex>   // gave_up_
#include <set>     // started programs
#include <string>
#include <vector>

#include <boost/json/object.hpp>

#include "common/event_reporter.hpp"
#include "config/daemon_config.hpp"
#include "procpool/pool.hpp"
#include "procpool/supervisor.hpp"
#include "run/control_protocol.hpp"

namespace procpool::tool {

class Daemon {
 public:
  // `wake_fd`: an eventfd written on every program event, so the main loop starts what a
  // readiness unblocked. Threads it starts (the Supervisor's, the pools') inherit the caller's
  // signal mask.
  Daemon(DaemonConfig config, EventReporter& reporter, int wake_fd);
  ~Daemon();
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  // Starts every pool (each waits for its min_workers to be READY). Throws procpool::Error.
  void start_pools();
  // Starts each program not started yet whose dependencies are all ready. Call at start and
  // after every wake; does nothing during a reload (which calls it at its end). A program that
  // fails to launch is reported and counted started.
  void start_ready_programs();
  // A program with on_give_up = "exit" whose instance gave up, with what it said; empty if
  // none. (Any thread sets it, through the Supervisor's events.)
  std::string gave_up_exiting() const;
  // Every program's instances are ready.
  bool all_ready() const;
  // Programs whose every instance is ready, of program_count().
  std::size_t ready_programs() const;
  std::size_t program_count() const {
    const std::lock_guard lock(mutex_);
    return config_.programs.size();
  }
  // The status reply: {"ok": true, "programs": [...], "pools": [...]}, for `name` only if not
  // empty; {"ok": false, "error": ...} for a name that is neither.
  boost::json::object status(const std::string& name) const;
  // start, stop, restart NAME (a program): the reply. stop waits until its instances have
  // exited, restart until they are started again (run on a job thread; status() is answered
  // meanwhile). A program stopped by hand stays stopped
  // until started by hand; one whose dependencies are not ready is refused.
  boost::json::object control(ControlRequest::Command command, const std::string& name);
  // Applies a re-read config (docs/control.md, "reload"): removed programs stopped (dependents
  // first) and pools drained; changed ones (their section or env_file differ) updated one
  // instance at a time, each new instance ready before its old one stops (max_unavailable,
  // ready_timeout), in start order; added ones started once their dependencies are ready;
  // changed pools replaced by a new pool, ready first, then the old one drained. A program
  // whose update fails is rolled back and keeps its old config. The reply lists what was
  // done; "ok" is false if any update failed. (daemon_reload.cpp)
  boost::json::object reload(DaemonConfig next);
  // A reload refused before reload() (a config with problems): counted in the metrics.
  void note_refused_reload() noexcept { reloads_failed_.fetch_add(1); }
  // Stops the programs in reverse start order (each waits for its dependents), then shuts the
  // pools down (their queued and running tasks finish). `fast`: SIGKILL everything now.
  void stop(bool fast);
  // SIGKILL to every program and pool worker now, from any thread (a second signal while a job
  // runs): whatever waits on them (an update, a stop) ends at once.
  void kill_everything();
  // The Prometheus exposition of everything it runs and of itself (docs/metrics.md). Safe from
  // another thread (the metrics server's). (daemon_metrics.cpp)
  std::string metrics_text() const;

 private:
  // The spec the Supervisor gets: its log lines also copied to our stderr.
  static ProgramSpec prepared_spec(const ProgramConfig& program);
  bool started(const std::string& program) const;
  // During a reload: `name` (of `next`) started, after what it depends on, and waited for until
  // ready (at most until `deadline`). False if it is not ready by then.
  bool ensure_ready(const DaemonConfig& next, const std::string& name,
                    std::chrono::steady_clock::time_point deadline);
  // exit_on_give_up_ from config_ (at start and after a reload).
  void note_give_up_actions();
  void publish_view();
  bool ready(const std::string& program) const;
  std::vector<std::string> waiting_for(const ProgramConfig& program) const;

  DaemonConfig config_;
  EventReporter& reporter_;
  // Declared before supervisor_: its thread's callbacks use them until it is destroyed.
  mutable std::mutex gave_up_mutex_;
  std::string gave_up_;  // guarded by gave_up_mutex_: set on the Supervisor's thread
  std::set<std::string> exit_on_give_up_;  // guarded by gave_up_mutex_: on_give_up = "exit"
  Supervisor supervisor_;
  std::vector<std::shared_ptr<Pool>> pools_;  // as config_.pools
  // What metrics_text() reads on the metrics thread, republished by the main thread after
  // every change (publish_view()): config_ and pools_ themselves are the main thread's.
  struct View {
    std::size_t programs = 0;
    std::vector<std::pair<std::string, std::shared_ptr<Pool>>> pools;
  };
  mutable std::mutex view_mutex_;
  View view_;  // guarded by view_mutex_
  std::atomic<std::uint64_t> reloads_ok_{0};
  std::atomic<std::uint64_t> reloads_failed_{0};
  std::vector<std::string> started_;  // in start order
  // config_, started_ and pools_ are read and written by the main thread and by the one job
  // thread that runs a long control command (run_command.cpp); never held across a blocking
  // Supervisor or Pool call. Taken before view_mutex_ and gave_up_mutex_.
  mutable std::mutex mutex_;
  // A reload is applying a new config: start_ready_programs() waits for its end (it would start
  // programs the reload is removing).
  std::atomic<bool> reloading_{false};
  // kill_everything() was called: a reload in progress applies nothing more.
  std::atomic<bool> cancelled_{false};
};

}  // namespace procpool::tool
