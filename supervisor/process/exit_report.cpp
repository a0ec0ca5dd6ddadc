// The names of the supervisor's public enums and ExitReport's one-line description
// (procpool/program_status.hpp).

#include <signal.h>  // SIGKILL ...
#include <string.h>  // sigabbrev_np

#include <cstdio>  // std::snprintf

#include "procpool/program_status.hpp"

namespace procpool {

const char* to_string(ProgramState state) noexcept {
  switch (state) {
    case ProgramState::Stopped:
      return "stopped";
    case ProgramState::Starting:
      return "starting";
    case ProgramState::Ready:
      return "ready";
    case ProgramState::Stopping:
      return "stopping";
    case ProgramState::Exited:
      return "exited";
    case ProgramState::Backoff:
      return "backoff";
    case ProgramState::CrashLoop:
      return "crash_loop";
  }
  return "unknown";
}

const char* to_string(KillReason reason) noexcept {
  switch (reason) {
    case KillReason::None:
      return "none";
    case KillReason::Stop:
      return "stop";
    case KillReason::StartTimeout:
      return "start_timeout";
    case KillReason::Watchdog:
      return "watchdog";
    case KillReason::MemorySoft:
      return "memory_soft_limit";
    case KillReason::MemoryHard:
      return "memory_hard_limit";
  }
  return "unknown";
}

const char* to_string(SupervisorEvent::Kind kind) noexcept {
  switch (kind) {
    case SupervisorEvent::Kind::Started:
      return "started";
    case SupervisorEvent::Kind::Ready:
      return "ready";
    case SupervisorEvent::Kind::Exited:
      return "exited";
    case SupervisorEvent::Kind::Backoff:
      return "backoff";
    case SupervisorEvent::Kind::CrashLoop:
      return "crash_loop";
    case SupervisorEvent::Kind::Stopped:
      return "stopped";
    case SupervisorEvent::Kind::SpawnFailed:
      return "spawn_failed";
  }
  return "unknown";
}

std::string ExitReport::describe() const {
  std::string out = "pid " + std::to_string(pid) + " ";
  if (signaled) {
    const char* abbrev = ::sigabbrev_np(signal);
    out += "killed by signal " + std::to_string(signal);
    if (abbrev != nullptr) out += std::string(" (SIG") + abbrev + ")";
    if (core_dumped) out += ", core dumped";
  } else {
    out += "exit code " + std::to_string(exit_code);
  }
  char uptime_text[32];
  std::snprintf(uptime_text, sizeof uptime_text, " after %.3f s",
                static_cast<double>(uptime.count()) / 1000.0);
  out += uptime_text;
  if (!was_ready) out += ", before it was ready";
  if (killed_by != KillReason::None) out += std::string(" (") + to_string(killed_by) + ")";
  return out;
}

}  // namespace procpool
