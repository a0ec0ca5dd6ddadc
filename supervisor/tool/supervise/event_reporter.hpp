#pragma once

// How `procpool supervise` tells its user what happens to the program: one line on standard
// error per life-cycle event,
//   procpool supervise: web:0 started (pid 123)
//   procpool supervise: web:0 exited: exit code 1 after 0.2 s; restarting in 150 ms
//   procpool supervise: web:0 crash loop: 5 broken starts in a row; next start in 2.4 s
// and the program's STATUS= text whenever it changes. An exit is reported together with what
// follows it (the Supervisor decides that at once, in the next event), so the two read as one
// line. A line that stderr does not take within a second is dropped: the lines are written on
// the Supervisor's thread, which must not stall behind a reader that stopped reading.

#include <map>          // per-instance state
#include <mutex>        // std::mutex
#include <optional>     // the pending exit
#include <string>       // the lines
#include <string_view>  // std::string_view
#include <vector>       // status()

#include "procpool/program_spec.hpp"  // RestartMode
#include "procpool/program_status.hpp"

namespace procpool::tool {

class EventReporter {
 public:
  // `quiet`: no life-cycle lines and no STATUS= lines. `show_ready`: print Ready events (with
  // readiness Started they come with every start and say nothing new). `restart_mode` says why
  // an instance that exited was left stopped.
  EventReporter(int fd, bool quiet, bool show_ready, RestartMode restart_mode)
      : fd_(fd), quiet_(quiet), show_ready_(show_ready), restart_mode_(restart_mode) {}
  EventReporter(const EventReporter&) = delete;
  EventReporter& operator=(const EventReporter&) = delete;

  // Supervisor::Options::on_event (the supervisor's thread).
  void on_event(const SupervisorEvent& event);
  // Prints the STATUS= texts that changed since they were last printed (any thread).
  void on_status(const std::vector<ProcessStatus>& statuses);
  // A line of procpool supervise's own, printed even when quiet ("procpool supervise: " + text).
  void message(std::string_view text);

 private:
  void write_line_locked(const std::string& text);
  void flush_pending_locked(const std::string& name);
  std::string why_stopped(const SupervisorEvent& event) const;

  std::mutex mutex_;
  const int fd_;
  const bool quiet_;
  const bool show_ready_;
  const RestartMode restart_mode_;
  // An exit or a failed start waiting for the decision that follows it, by instance name.
  struct Pending {
    std::string line;
    std::optional<ExitReport> exit;  // none after a failed start
  };
  std::map<std::string, Pending> pending_;
  std::map<std::string, std::string> status_text_;  // the last STATUS= printed, by instance
};

// "exit code 1 after 0.2 s", "killed by signal 9 (SIGKILL) after 3.1 s (watchdog)"
std::string describe_exit(const ExitReport& exit);

}  // namespace procpool::tool
