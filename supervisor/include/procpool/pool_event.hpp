#pragma once
#include "procpool/detail/require_cxx20.hpp"

#include <chrono>   // std::chrono::milliseconds
#include <cstdint>  // std::uint64_t
#include <string>   // std::string

#include "procpool/protocol_violation.hpp"

namespace procpool {

// One step in the life of a pool's worker slot (PoolOptions::on_event). Slots are numbered
// 0 .. max_workers (the last one for a recycled worker's replacement, which starts before the
// old one stops) and keep their number across restarts; `incarnation` names one process.
struct PoolEvent {
  enum class Kind : std::uint8_t {
    WorkerStarted,     // a process was spawned for the slot (pid set)
    WorkerReady,       // it announced its handlers and takes tasks
    WorkerExited,      // it was reaped: `message` is the exit report (exit code or signal,
                       // uptime, the task it was running, its last stderr lines)
    WorkerRestarting,  // the slot will start a new process after `delay`
    SpawnFailed,       // starting a process failed (`message` says why, `error_code` the errno)
    CrashLoop,         // `consecutive_failures` broken starts in a row (RestartPolicy)
  };

  Kind kind = Kind::WorkerStarted;
  // When it happened (the callback runs a little later, on the supervisor thread). For
  // WorkerStarted: when the start began, the time spawn_interval is counted from.
  std::chrono::steady_clock::time_point at{};
  unsigned slot = 0;
  std::uint64_t incarnation = 0;
  int pid = 0;  // 0 where no process is involved (SpawnFailed, WorkerRestarting)
  std::string message;
  // WorkerExited: the exit code (or -1 if it was killed by a signal) and the signal (or 0).
  int exit_code = -1;
  int signal = 0;
  // WorkerExited: the death counted as a broken start (RestartPolicy); false when it was charged
  // to a task, came after a stable run, or was intended (recycling, scale-down, shutdown).
  bool counted = false;
  // WorkerExited: the rule it broke, if the pool killed it for breaking the protocol.
  ProtocolViolation violation = ProtocolViolation::None;
  int error_code = 0;                  // SpawnFailed: the errno, or 0 if none applies
  std::chrono::milliseconds delay{0};  // WorkerRestarting: the backoff before the start
  unsigned consecutive_failures = 0;   // broken starts in a row so far
};

constexpr const char* to_string(PoolEvent::Kind kind) noexcept {
  switch (kind) {
    case PoolEvent::Kind::WorkerStarted:
      return "started";
    case PoolEvent::Kind::WorkerReady:
      return "ready";
    case PoolEvent::Kind::WorkerExited:
      return "exited";
    case PoolEvent::Kind::WorkerRestarting:
      return "restarting";
    case PoolEvent::Kind::SpawnFailed:
      return "spawn_failed";
    case PoolEvent::Kind::CrashLoop:
      return "crash_loop";
  }
  return "unknown";
}

}  // namespace procpool
