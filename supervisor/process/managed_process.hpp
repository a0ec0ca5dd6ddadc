#pragma once

// One instance of a supervised program and its state machine (docs/supervisor.md, "States"):
//
//   Stopped -> Starting -> Ready -> Stopping -> Exited -> Backoff | CrashLoop -> Starting ...
//
// Every transition is made through transition() (managed_process.cpp, with the table of allowed
// edges), called only from the managed_process*.cpp files: managed_process.cpp (the public
// calls), managed_process_run.cpp (launching, readiness, watching a run) and
// managed_process_exit.cpp (killing, exits, leftovers, the restart decision). It runs on the
// supervisor's loop thread only: it launches (PDEATHSIG, launcher.hpp), watches the pidfd, the
// output pipes and its timers, and owns the RestartTracker that decides the backoff.

#include <chrono>      // std::chrono
#include <cstdint>     // std::uint64_t
#include <functional>  // std::function
#include <memory>      // std::unique_ptr, std::shared_ptr
#include <optional>    // std::optional
#include <string>      // std::string
#include <vector>      // std::vector

#include "child_process.hpp"
#include "credentials.hpp"
#include "event_loop.hpp"
#include "notify_socket.hpp"
#include "output_capture.hpp"
#include "procpool/program_spec.hpp"
#include "procpool/program_status.hpp"
#include "restart_tracker.hpp"
#include "tcp_probe.hpp"

namespace procpool::detail {

// A program as registered: its spec and the sinks its instances share.
struct Program {
  ProgramSpec spec;
  std::optional<Credentials> credentials;  // from spec.user and spec.group
  std::shared_ptr<SinkSet> stdout_sinks;
  std::shared_ptr<SinkSet> stderr_sinks;
};

// What the supervisor gives its instances.
struct ProcessHost {
  EventLoop* loop = nullptr;
  std::string notify_path;
  std::function<void(SupervisorEvent)> emit;   // queued, delivered after the current step
  std::function<void()> count_callback_error;  // an on_line sink threw
  std::function<void(int pid, class ManagedProcess*)> claim_pid;  // nullptr: release
  std::function<double()> uniform01;                              // for the backoff's jitter
  std::function<void()> changed;  // after every transition (shutdown, rollouts)
  // Above memory_soft_limit: asks for a replacement started before this one stops (a one-slot
  // rollout, rollout.hpp). False: none can be had now; the instance is then stopped and
  // restarted. Unset: always so.
  std::function<bool(class ManagedProcess&)> recycle;
};

class ManagedProcess {
 public:
  // Keeps `program` alive as long as it lives (a rolling update may replace the program's spec
  // while this instance still runs the old one).
  ManagedProcess(ProcessHost& host, std::shared_ptr<const Program> program, unsigned instance);
  // SIGKILLs and reaps whatever is left (the supervisor stops everything gracefully first).
  ~ManagedProcess();
  ManagedProcess(const ManagedProcess&) = delete;
  ManagedProcess& operator=(const ManagedProcess&) = delete;

  // Stopped (or Backoff/CrashLoop: at once) -> Starting. A launch failure leaves it Stopped and
  // throws SupervisorError(SpawnFailed). Nothing to do in other states.
  void start();
  // -> Stopping -> Exited -> Stopped. `done` runs exactly once, when every process this
  // instance had at the call is gone: its run and the leftovers of earlier runs (at once if
  // there are none). A start() or restart() before then does not hold it up: it waits only for
  // the processes it stopped.
  void stop(std::function<void()> done, KillReason reason = KillReason::Stop);
  // As stop(), then start() again (restart counted).
  void restart();
  // A stop without the grace: SIGKILL now to the run's process group and to the leftovers of
  // earlier runs. Not restarted. Does not wait (stop() does).
  void kill();

  void on_notify(const NotifyMessage& message);

  ProgramState state() const noexcept { return state_; }
  // Stopped, with no process group left to clean up.
  bool idle() const noexcept { return state_ == ProgramState::Stopped && remains_.empty(); }
  ProcessStatus status() const;
  const std::string& name() const noexcept { return name_; }
  unsigned instance() const noexcept { return instance_; }
  const std::shared_ptr<const Program>& program() const noexcept { return program_holder_; }

 private:
  // One run: a launched main process and what belongs to it.
  struct Run {
    std::uint64_t id = 0;  // 1, 2, ... in launch order
    ChildProcess child;
    std::unique_ptr<OutputCapture> out;
    std::unique_ptr<OutputCapture> err;
    EventLoop::Clock::time_point started_at;
    std::optional<EventLoop::Clock::time_point> ready_at;
    KillReason kill_reason = KillReason::None;
    std::string status_text;
    std::optional<TcpProbe> probe;
    std::chrono::milliseconds probe_interval{10};
    EventLoop::TimerId start_timer = 0, watchdog_timer = 0, health_timer = 0, probe_timer = 0,
                       kill_timer = 0;
    // Set when a stop began (the stop signal, STOPPING=1, or a SIGKILL: then now): by then
    // every process of the run is SIGKILLed, its leftovers too (docs/supervisor.md, KillMode).
    std::optional<EventLoop::Clock::time_point> kill_deadline;
    bool stop_signal_sent = false;  // to the group, for this stop
    // The latest WATCHDOG=1. A ping only moves this; the one watchdog timer re-arms itself
    // from it when it fires, so a child sending pings in a loop adds no timers.
    EventLoop::Clock::time_point last_ping{};
  };
  // The rest of an exited run's process group: the stop signal, SIGKILL at the deadline, then
  // the zombie main process is reaped and the pipes closed. Looked at again on a timer (and at
  // each EOF) so that one whose last member exited is finished at once.
  struct Remains {
    std::uint64_t id = 0;  // its run's
    ChildProcess child;
    std::unique_ptr<OutputCapture> out;
    std::unique_ptr<OutputCapture> err;
    std::optional<EventLoop::Clock::time_point> kill_deadline;  // the stop's, if one began
    bool stop_signal_sent = false;
    EventLoop::TimerId kill_timer = 0, check_timer = 0;
  };
  // A stop() caller, waiting for every process of runs up to `up_to` (and their leftovers).
  struct StopWaiter {
    std::uint64_t up_to = 0;
    std::function<void()> done;
  };

  void transition(ProgramState to);
  // `gave_up`: a Stopped event because RestartPolicy::give_up_after was reached.
  void emit(SupervisorEvent::Kind kind, const std::string& message = {}, int error_code = 0,
            bool gave_up = false);
  void launch_run();  // throws what launch throws
  void abandon_launch(Run& run, bool claimed) noexcept;
  void start_or_back_off();
  void became_ready();
  void kill_run(KillReason reason, bool graceful);
  void arm_kill_timer();
  void kill_group_now() noexcept;
  void on_main_exit();
  void decide_after_exit(bool clean);
  void schedule_start(std::chrono::milliseconds delay, std::chrono::milliseconds cap);
  void arm_watchdog();
  void watchdog_after(std::chrono::milliseconds delay);
  void health_check();
  void probe_tcp();
  void watch_output(OutputCapture& capture);
  void close_capture(OutputCapture& capture);
  void bury(Remains& remains);
  void check_remains_after(Remains& remains, std::chrono::milliseconds delay);
  void finish_remains(Remains* remains);
  void cancel_run_timers();
  bool gone_up_to(std::uint64_t run_id) const noexcept;
  void call_stop_waiters();

  ProcessHost& host_;
  std::shared_ptr<const Program> program_holder_;
  const Program& program_;
  const ProgramSpec& spec_;
  unsigned instance_;
  std::string name_;
  ProgramState state_ = ProgramState::Stopped;
  RestartTracker tracker_;
  std::unique_ptr<Run> run_;
  std::vector<std::unique_ptr<Remains>> remains_;
  std::optional<ExitReport> last_exit_;
  std::string last_stderr_tail_;
  std::uint64_t starts_ = 0;
  std::uint64_t last_run_id_ = 0;
  bool last_run_stable_ = false;  // the last run was ready for at least min_uptime
  bool stop_requested_ = false;
  bool restart_requested_ = false;
  EventLoop::TimerId backoff_timer_ = 0;
  std::vector<StopWaiter> stop_waiters_;
};

}  // namespace procpool::detail
