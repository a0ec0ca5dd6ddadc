#pragma once
#include "procpool/detail/require_cxx20.hpp"

// What procpool::Supervisor reports about its instances: their state, how each run ended, and
// the life-cycle events (docs/supervisor.md has the state machine).

#include <chrono>    // durations
#include <cstdint>   // std::uint64_t
#include <optional>  // std::optional
#include <string>    // std::string

namespace procpool {

// The state of one instance. Every transition goes through ManagedProcess::transition()
// (supervisor/process/managed_process.cpp), which refuses any edge not in its table.
enum class ProgramState : std::uint8_t {
  Stopped,    // not running and not about to be (never started, stopped, or no restart due)
  Starting,   // exec'ed, not ready yet (its start timeout runs)
  Ready,      // ready (ReadinessMode), watched by the watchdog and memory limits
  Stopping,   // the stop signal was sent; SIGKILL after the grace
  Exited,     // its main process was reaped; the restart decision is made at once
  Backoff,    // waiting before the next start after a broken one
  CrashLoop,  // as Backoff, after RestartPolicy::crash_loop_after broken starts in a row
};
const char* to_string(ProgramState state) noexcept;

// Why the supervisor killed an instance, if it did.
enum class KillReason : std::uint8_t {
  None,          // it exited on its own
  Stop,          // stop(), restart() or the supervisor's shutdown
  StartTimeout,  // not ready within ProgramSpec::start_timeout
  Watchdog,      // WATCHDOG=1 came late
  MemorySoft,    // above memory_soft_limit (stopped gracefully)
  MemoryHard,    // above memory_hard_limit (SIGKILLed)
};
const char* to_string(KillReason reason) noexcept;

// How one run of an instance ended.
struct ExitReport {
  int pid = 0;
  bool signaled = false;
  int exit_code = 0;  // if !signaled
  int signal = 0;     // if signaled
  bool core_dumped = false;
  // False when another waiter in the supervisor's process (a SIGCHLD handler calling
  // waitpid(-1)) reaped it first: it exited, and how is lost (exit_code is then -1).
  bool status_known = true;
  std::chrono::milliseconds uptime{0};  // from the exec to the exit
  bool was_ready = false;
  KillReason killed_by = KillReason::None;
  std::string stderr_tail;  // its last stderr lines, each "  | line\n"
  // "exit code 3 after 1.2 s", "killed by signal 9 (SIGKILL) after 0.3 s (watchdog)"
  std::string describe() const;
  // How it ended, alone: "exit code 3", "killed by signal 11 (SIGSEGV), core dumped".
  std::string ending() const;
};

struct ProcessStatus {
  std::string program;
  unsigned instance = 0;
  std::string name;  // "program:instance"
  ProgramState state = ProgramState::Stopped;
  int pid = 0;  // 0 when no process runs
  std::chrono::milliseconds uptime{0};
  std::uint64_t restarts = 0;  // starts after the first
  std::optional<ExitReport> last_exit;
  std::uint64_t rss_bytes = 0;  // of its process group (/proc), read by status()
  double cpu_seconds = 0;       // of its process group: user + system time so far
  std::string status_text;      // the last STATUS= it sent
  std::string stderr_tail;
};

struct SupervisorEvent {
  enum class Kind : std::uint8_t {
    Started,      // exec'ed (pid set)
    Ready,        // became ready
    Exited,       // its main process exited (exit set)
    Backoff,      // will start again after `delay`
    CrashLoop,    // as Backoff, `broken_in_a_row` >= RestartPolicy::crash_loop_after
    Stopped,      // stopped for good (stop(), restart mode, give_up_after)
    SpawnFailed,  // starting failed (`message` says why, `error_code` the errno)
  };
  Kind kind = Kind::Started;
  std::string program;
  unsigned instance = 0;
  std::string name;
  int pid = 0;
  std::optional<ExitReport> exit;
  std::chrono::milliseconds delay{0};      // Backoff, CrashLoop
  std::chrono::milliseconds delay_cap{0};  // Backoff, CrashLoop: the bound `delay` was drawn below
  std::uint64_t broken_in_a_row = 0;
  std::string message;
  int error_code = 0;
  // Stopped: because RestartPolicy::give_up_after was reached (not a stop, not the restart
  // mode).
  bool gave_up = false;
};
const char* to_string(SupervisorEvent::Kind kind) noexcept;

}  // namespace procpool
