#pragma once

// How `procpool supervise` and `procpool run` tell their user what happens to the programs: one
// line on standard error per life-cycle event,
//   procpool supervise: web:0 started (pid 123)
//   procpool supervise: web:0 exited: exit code 1 after 0.2 s; restarting in 150 ms
//   procpool supervise: web:0 crash loop: 5 broken starts in a row; next start in 2.4 s
// and the program's STATUS= text whenever it changes. An exit is reported together with what
// follows it (the Supervisor decides that at once, in the next event), so the two read as one
// line. A line that stderr does not take within a second is dropped: the lines are written on
// the Supervisor's thread, which must not stall behind a reader that stopped reading.

#include <cstdint>                    // Settings
#include <map>                        // per-instance state
#include <mutex>                      // std::mutex
#include <optional>                   // the pending exit
#include <string>                     // the lines
#include <string_view>                // std::string_view
#include <vector>                     // status()
#include "procpool/program_spec.hpp"  // RestartMode
#include "procpool/program_status.hpp"

namespace procpool::tool {

class EventReporter {
 public:
  // Where a setting came from, for the reasons given ("--restart never" or
  // "restart = \"never\"").
  enum class Settings : std::uint8_t { CommandLine, ConfigFile };

  // `prefix` starts every line ("procpool supervise: "). `quiet`: no life-cycle lines and no
  // STATUS= lines.
  EventReporter(int fd, std::string prefix, bool quiet, Settings settings)
      : fd_(fd), prefix_(std::move(prefix)), quiet_(quiet), settings_(settings) {}
  EventReporter(const EventReporter&) = delete;
  EventReporter& operator=(const EventReporter&) = delete;

  // Before its first event: `show_ready` prints its Ready events (with readiness Started they
  // come with every start and say nothing new); `restart_mode` says why an instance that exited
  // was left stopped.
  void add_program(const std::string& program, bool show_ready, RestartMode restart_mode);
  // Supervisor::Options::on_event (the supervisor's thread).
  void on_event(const SupervisorEvent& event);
  // Prints the STATUS= texts that changed since they were last printed (any thread).
  void on_status(const std::vector<ProcessStatus>& statuses);
  // A line of the command's own, printed even when quiet (the prefix, then `text`).
  void message(std::string_view text);

 private:
  void write_line_locked(const std::string& text);
  void flush_pending_locked(const std::string& name);
  std::string why_stopped(const SupervisorEvent& event) const;
  // How the user set `option` to `value` ("" for the option alone), in their own terms.
  std::string setting(std::string_view option, std::string_view value) const;

  std::mutex mutex_;
  const int fd_;
  const std::string prefix_;
  const bool quiet_;
  const Settings settings_;
  struct Program {
    bool show_ready = false;
    RestartMode restart_mode = RestartMode::Always;
  };
  std::map<std::string, Program> programs_;  // by program name
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
