// The names of the supervisor's public enums and ExitReport's one-line description
// (procpool/program_status.hpp).

#include <cstdio>  // std::snprintf

#include "process_status.hpp"
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

std::string ExitReport::ending() const {
  detail::ExitStatus status;
  status.signaled = signaled;
  status.code = exit_code;
  status.signal = signal;
  status.core_dumped = core_dumped;
  status.known = status_known;
  return status.describe();
}

std::string ExitReport::describe() const {
  std::string out = "pid " + std::to_string(pid) + " " + ending();
  char uptime_text[32];
  std::snprintf(uptime_text, sizeof uptime_text, " after %.3f s",
                static_cast<double>(uptime.count()) / 1000.0);
  out += uptime_text;
  if (!was_ready) out += ", before it was ready";
  if (killed_by != KillReason::None) out += std::string(" (") + to_string(killed_by) + ")";
  return out;
}

}  // namespace procpool
