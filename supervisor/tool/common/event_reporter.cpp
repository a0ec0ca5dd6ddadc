#include "common/event_reporter.hpp"

#include <chrono>  // the write deadline
#include <cstdio>  // std::snprintf

#include "common/duration.hpp"      // duration_text
#include "common/error_stream.hpp"  // write_all

namespace procpool::tool {
namespace {

// Lines are written on the Supervisor's thread: a reader of our stderr that stops reading may
// cost its lines, never the supervision (restarts, stops, watchdogs) behind them.
constexpr std::chrono::milliseconds kWriteDeadline{1000};

// Seconds with one decimal: an uptime is read at a glance, not to the millisecond.
std::string seconds_text(std::chrono::milliseconds ms) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f s", static_cast<double>(ms.count()) / 1e3);
  return text;
}

}  // namespace

std::string describe_exit(const ExitReport& exit) {
  // Another waiter in our process reaped it (docs/supervisor.md, KillMode).
  std::string out = exit.status_known ? exit.ending() : "exit status unknown (reaped elsewhere)";
  out += " after " + seconds_text(exit.uptime);
  if (exit.killed_by != KillReason::None)
    out += std::string(" (") + to_string(exit.killed_by) + ")";
  return out;
}

void EventReporter::add_program(const std::string& program, bool show_ready,
                                RestartMode restart_mode) {
  const std::lock_guard lock(mutex_);
  programs_[program] = Program{show_ready, restart_mode};
}

void EventReporter::message(std::string_view text) {
  const std::lock_guard lock(mutex_);
  write_line_locked(std::string(text));
}

void EventReporter::write_line_locked(const std::string& text) {
  std::string line(prefix_);
  line.append(text).push_back('\n');
  (void)write_all(fd_, line.data(), line.size(),  // nowhere to report a failure
                  std::chrono::steady_clock::now() + kWriteDeadline);
}

void EventReporter::flush_pending_locked(const std::string& name) {
  const auto found = pending_.find(name);
  if (found == pending_.end()) return;
  write_line_locked(found->second.line);
  pending_.erase(found);
}

std::string EventReporter::setting(std::string_view option, std::string_view value) const {
  // Appended piece by piece: GCC 12's -Wrestrict misfires on "literal" + std::string&& at -O3.
  std::string text;
  if (settings_ == Settings::CommandLine) {
    text.append("--").append(option);
    if (!value.empty()) text.append(" ").append(value);
    return text;
  }
  text.append(option);
  for (char& c : text) c = c == '-' ? '_' : c;  // the config file's spelling
  if (!value.empty()) text.append(" = \"").append(value).append("\"");
  return text;
}

std::string EventReporter::why_stopped(const SupervisorEvent& event) const {
  const auto found = pending_.find(event.name);
  if (found == pending_.end()) return "stopped";  // during a backoff
  const std::optional<ExitReport>& exit = found->second.exit;
  if (exit && exit->killed_by == KillReason::Stop) return "stopped";
  // Only give_up_after leaves an instance stopped after a failed start.
  if (!exit)
    return "giving up after " + std::to_string(event.broken_in_a_row) +
           " broken starts in a row (" + setting("give-up-after", "") + ")";
  const ExitReport& report = *exit;
  const auto found_program = programs_.find(event.program);
  const RestartMode mode =
      found_program != programs_.end() ? found_program->second.restart_mode : RestartMode::Always;
  if (mode == RestartMode::Never) return "not restarted (" + setting("restart", "never") + ")";
  if (mode == RestartMode::OnFailure && !report.signaled && report.exit_code == 0 &&
      report.killed_by == KillReason::None) {
    return "not restarted (" + setting("restart", "on-failure") + ")";
  }
  return "giving up after " + std::to_string(event.broken_in_a_row) + " broken starts in a row (" +
         setting("give-up-after", "") + ")";
}

void EventReporter::on_event(const SupervisorEvent& event) {
  if (quiet_) return;
  const std::lock_guard lock(mutex_);
  const std::string& name = event.name;
  const auto pending = pending_.find(name);
  // What the line held back ends with, once the next event says what follows.
  const auto complete = [&](const std::string& suffix) {
    if (pending == pending_.end()) return false;
    write_line_locked(pending->second.line + suffix);
    pending_.erase(pending);
    return true;
  };
  using Kind = SupervisorEvent::Kind;
  switch (event.kind) {
    case Kind::Started:
      complete("; restarting now");
      write_line_locked(name + " started (pid " + std::to_string(event.pid) + ")");
      break;
    case Kind::Ready:
      flush_pending_locked(name);
      if (const auto found = programs_.find(event.program);
          found != programs_.end() && found->second.show_ready) {
        write_line_locked(name + " ready");
      }
      break;
    case Kind::Exited:
      flush_pending_locked(name);
      pending_[name] = {name + " exited: " + (event.exit ? describe_exit(*event.exit) : "?"),
                        event.exit};
      break;
    case Kind::SpawnFailed:
      flush_pending_locked(name);
      pending_[name] = {name + " failed to start: " + event.message, std::nullopt};
      break;
    case Kind::Backoff:
      if (!complete("; restarting in " + duration_text(event.delay))) {
        write_line_locked(name + " restarting in " + duration_text(event.delay));
      }
      break;
    case Kind::CrashLoop:
      flush_pending_locked(name);
      write_line_locked(name + " crash loop: " + std::to_string(event.broken_in_a_row) +
                        " broken starts in a row; next start in " + duration_text(event.delay));
      break;
    case Kind::Stopped: {
      const std::string why = why_stopped(event);
      if (!complete("; " + why)) write_line_locked(name + " " + why);
      break;
    }
  }
}

void EventReporter::on_status(const std::vector<ProcessStatus>& statuses) {
  if (quiet_) return;
  const std::lock_guard lock(mutex_);
  for (const ProcessStatus& status : statuses) {
    std::string& shown = status_text_[status.name];
    if (status.status_text == shown) continue;
    shown = status.status_text;
    if (!shown.empty()) write_line_locked(status.name + " status: " + shown);
  }
}

}  // namespace procpool::tool
