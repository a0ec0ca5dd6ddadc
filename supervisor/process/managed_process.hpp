#pragma once

// One instance of a supervised program and its state machine (docs/supervisor.md, "States"):
//
//   Stopped -> Starting -> Ready -> Stopping -> Exited -> Backoff | CrashLoop -> Starting ...
//
// Every transition is made in managed_process.cpp, through transition(), and nowhere else. It
// runs on the supervisor's loop thread only: it launches (PDEATHSIG, launcher.hpp), watches the
// pidfd, the output pipes and its timers, and owns the RestartTracker that decides the backoff.

#include <chrono>      // std::chrono
#include <cstdint>     // std::uint64_t
#include <functional>  // std::function
#include <memory>      // std::unique_ptr, std::shared_ptr
#include <optional>    // std::optional
#include <string>      // std::string
#include <vector>      // std::vector

#include "child_process.hpp"
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
  std::function<void()> changed;  // after every step (shutdown progress)
};

class ManagedProcess {
 public:
  ManagedProcess(ProcessHost& host, const Program& program, unsigned instance);
  // SIGKILLs and reaps whatever is left (the supervisor stops everything gracefully first).
  ~ManagedProcess();
  ManagedProcess(const ManagedProcess&) = delete;
  ManagedProcess& operator=(const ManagedProcess&) = delete;

  // Stopped (or Backoff/CrashLoop: at once) -> Starting. A launch failure leaves it Stopped and
  // throws SupervisorError(SpawnFailed). Nothing to do in other states.
  void start();
  // -> Stopping -> Exited -> Stopped; `done` runs once it is Stopped and its process group is
  // gone (at once if it already is).
  void stop(std::function<void()> done);
  // As stop(), then start() again (restart counted).
  void restart();

  void on_notify(const NotifyMessage& message);

  ProgramState state() const noexcept { return state_; }
  // Stopped, with no process group left to clean up.
  bool idle() const noexcept { return state_ == ProgramState::Stopped && remains_.empty(); }
  ProcessStatus status() const;
  const std::string& name() const noexcept { return name_; }

 private:
  // One run: a launched main process and what belongs to it.
  struct Run {
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
    // The latest WATCHDOG=1. A ping only moves this; the one watchdog timer re-arms itself
    // from it when it fires, so a child sending pings in a loop adds no timers.
    EventLoop::Clock::time_point last_ping{};
  };
  // The rest of an exited run's process group: stop signal sent, SIGKILL after the grace, then
  // the zombie main process is reaped and the pipes closed.
  struct Remains {
    ChildProcess child;
    std::unique_ptr<OutputCapture> out;
    std::unique_ptr<OutputCapture> err;
    EventLoop::TimerId kill_timer = 0;
  };

  void transition(ProgramState to);
  void emit(SupervisorEvent::Kind kind, const std::string& message = {}, int error_code = 0);
  void launch_run();  // throws what launch throws
  void start_or_back_off();
  void became_ready();
  void kill_run(KillReason reason, bool graceful);
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
  void finish_remains(Remains* remains);
  void cancel_run_timers();
  void call_stop_waiters();

  ProcessHost& host_;
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
  bool last_run_stable_ = false;  // the last run was ready for at least min_uptime
  bool stop_requested_ = false;
  bool restart_requested_ = false;
  EventLoop::TimerId backoff_timer_ = 0;
  std::vector<std::function<void()>> stop_waiters_;
};

}  // namespace procpool::detail
