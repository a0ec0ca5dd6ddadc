#pragma once
#include "procpool/detail/require_cxx20.hpp"

// What procpool::Supervisor runs: one long-running program, started numprocs times
// (docs/supervisor.md).

#include <chrono>       // durations
#include <cstdint>      // std::uint64_t
#include <string>       // std::string
#include <string_view>  // std::string_view
#include <utility>      // std::pair
#include <vector>       // std::vector

#include "procpool/output_sink.hpp"
#include "procpool/restart_policy.hpp"

namespace procpool {

// When an instance that exited is started again (systemd's Restart=, supervisord's
// autorestart). A stop(), restart() or the supervisor's shutdown never restarts on its own.
enum class RestartMode : std::uint8_t {
  Always,     // whatever the exit (the default: a long-running program that exits, even with
              // status 0, is not doing its job)
  OnFailure,  // unless it exited with status 0 and the supervisor did not kill it
  Never,      // the instance stays stopped once it exits
};

// When a started instance counts as ready (and its start timeout stops running).
enum class ReadinessMode : std::uint8_t {
  Started,  // as soon as it has been exec'ed (the default; supervisord's and PM2's view)
  Notify,   // when its main process sends READY=1 to $NOTIFY_SOCKET (systemd's Type=notify)
  TcpPort,  // when a connect() to 127.0.0.1:ProgramSpec::ready_port succeeds
};

struct ProgramSpec {
  // Unique among the supervisor's programs; instances are "name:0" .. "name:<numprocs-1>".
  std::string name;
  std::string command;                                   // path, or a bare name looked up in PATH
  std::vector<std::string> args;                         // argv[1..]
  std::vector<std::pair<std::string, std::string>> env;  // added to the supervisor's environment
  std::string working_directory;                         // empty: the supervisor's
  unsigned numprocs = 1;
  // Who it runs as: a user (name or uid) with its primary group and supplementary groups, as a
  // login has them; `group` (name or gid) sets another primary group. Both need the supervisor
  // to run as root (add() and update() refuse them otherwise). Empty: the supervisor's own.
  std::string user;
  std::string group;
  // The file mode creation mask it starts with (0027, say); -1: the supervisor's.
  int umask = -1;

  RestartMode restart_mode = RestartMode::Always;
  RestartPolicy restart;

  // Sent to the instance's whole process group to stop it; after stop_grace, SIGKILL.
  int stop_signal = 15;  // SIGTERM
  std::chrono::milliseconds stop_grace{10000};

  ReadinessMode readiness = ReadinessMode::Started;
  unsigned short ready_port = 0;  // ReadinessMode::TcpPort
  // Not ready this long after the exec: killed, and counted as a broken start.
  std::chrono::milliseconds start_timeout{60000};
  // > 0: the instance must send WATCHDOG=1 to $NOTIFY_SOCKET at least this often once ready
  // (it gets WATCHDOG_USEC); a late ping kills and restarts it. 0: no watchdog.
  std::chrono::milliseconds watchdog{0};

  // Resident memory of the instance's process group, checked every health_interval. Above
  // memory_soft_limit a ready instance is recycled: a replacement is started, and once it is
  // ready (within start_timeout) the old one is stopped gracefully; if the replacement fails,
  // the old one keeps running until the next check. (One still starting is stopped and
  // restarted.) Above memory_hard_limit it is SIGKILLed and restarted. 0: no limit.
  std::uint64_t memory_soft_limit = 0;
  std::uint64_t memory_hard_limit = 0;
  std::chrono::milliseconds health_interval{1000};

  // Defaults: copied to the supervisor's own stdout and stderr.
  OutputSink stdout_sink = OutputSink::to_fd(1);
  OutputSink stderr_sink = OutputSink::to_fd(2);
};

}  // namespace procpool
