#include "supervise/supervise_command.hpp"

#include <poll.h>         // poll
#include <pthread.h>      // pthread_sigmask
#include <signal.h>       // SIGPIPE
#include <sys/eventfd.h>  // the wake-up of the main thread
#include <sys/stat.h>     // stat: --chdir
#include <unistd.h>       // STDERR_FILENO

#include <atomic>    // the stopper's end
#include <cerrno>    // errno
#include <optional>  // the Supervisor
#include <string>    // messages
#include <thread>    // the stopper
#include <vector>    // statuses

#include "common/duration.hpp"
#include "common/error_stream.hpp"  // write_all
#include "common/event_reporter.hpp"
#include "common/interrupt_signals.hpp"
#include "common/text_format.hpp"
#include "procpool/supervisor.hpp"
#include "procpool/unique_fd.hpp"
#include "supervise/command_path.hpp"
#include "supervise/supervise_options.hpp"

namespace procpool::tool {
namespace {

// How often the main thread looks for a STATUS= text that changed without an event.
constexpr int kStatusPollMs = 1000;

void write_line(std::string_view text) {
  std::string line = "procpool supervise: ";
  line.append(text).push_back('\n');
  (void)write_all(STDERR_FILENO, line.data(), line.size());
}

// The status once every instance has stopped for good on its own.
int exit_status_of(const std::vector<ProcessStatus>& statuses) {
  if (statuses.size() == 1) {
    const std::optional<ExitReport>& exit = statuses.front().last_exit;
    if (!exit) return kExitFailed;  // it never ran: every start failed
    if (exit->signaled) return kExitSignalBase + exit->signal;
    return exit->status_known ? exit->exit_code : kExitFailed;
  }
  for (const ProcessStatus& status : statuses) {
    if (!status.last_exit || status.last_exit->signaled || status.last_exit->exit_code != 0) {
      return kExitFailed;
    }
  }
  return kExitOk;
}

bool all_stopped(const std::vector<ProcessStatus>& statuses) {
  for (const ProcessStatus& status : statuses) {
    if (status.state != ProgramState::Stopped) return false;
  }
  return true;
}

}  // namespace

int run_supervise_command(std::span<char* const> args, const CommandContext&) {
  int status = kExitOk;
  std::optional<SuperviseOptions> options = parse_supervise_options(args, status);
  if (!options) return status;
  ProgramSpec& spec = options->spec;

  const CommandPath found = find_command(spec.command);
  if (found.error != 0) {
    write_line(spec.command + ": " +
               (found.error == ENOENT ? std::string("command not found")
                                      : "cannot execute: " + errno_text(found.error)));
    return kExitUsage;
  }
  spec.command = found.path;
  if (!spec.working_directory.empty()) {
    struct stat st {};
    const int error = ::stat(spec.working_directory.c_str(), &st) != 0 ? errno
                      : S_ISDIR(st.st_mode)                            ? 0
                                                                       : ENOTDIR;
    if (error != 0) {
      write_line("--chdir " + spec.working_directory + ": " + errno_text(error));
      return kExitUsage;
    }
  }

  // A reader of our stderr that went away must not kill us (and with us the program's
  // supervision): writes then fail with EPIPE. The launcher resets the disposition in children.
  ::signal(SIGPIPE, SIG_IGN);
  const UniqueFd wake(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wake) {
    write_line("eventfd: " + errno_text(errno));
    return kExitFailed;
  }
  EventReporter reporter(STDERR_FILENO, "procpool supervise: ", options->quiet,
                         EventReporter::Settings::CommandLine);
  reporter.add_program(spec.name, spec.readiness != ReadinessMode::Started, spec.restart_mode);
  std::optional<InterruptSignals> signals;
  std::optional<Supervisor> supervisor;  // after the reporter and wake: its events use them
  const std::string name = spec.name;
  const int stop_signal = spec.stop_signal;
  const std::chrono::milliseconds stop_grace = spec.stop_grace;
  {
    const InterruptSignalsBlocked blocked;
    try {
      signals.emplace();
    } catch (const Error& e) {
      write_line(std::string("cannot handle SIGINT and SIGTERM: ") + e.what());
      return kExitFailed;
    }
    Supervisor::Options supervisor_options;
    supervisor_options.on_event = [&reporter, fd = wake.get()](const SupervisorEvent& event) {
      reporter.on_event(event);
      ::eventfd_write(fd, 1);
    };
    try {
      supervisor.emplace(std::move(supervisor_options));
      supervisor->add(std::move(spec));
    } catch (const std::exception& e) {
      write_line(e.what());
      return kExitUsage;
    }
  }
  try {
    supervisor->start(name);
  } catch (const SupervisorError& e) {
    write_line(e.what());
    return kExitUsage;
  }

  // SIGTERM/SIGINT: stop() on a thread of its own, so that the main thread still hears a
  // second signal while the program takes its grace.
  int signals_handled = 0;
  bool forced = false;
  std::atomic<bool> stopped{false};
  std::thread stopper;
  struct JoinStopper {
    std::thread& thread;
    ~JoinStopper() {
      if (thread.joinable()) thread.join();
    }
  } join_stopper{stopper};
  for (;;) {
    pollfd fds[2] = {{signals->fd(), POLLIN, 0}, {wake.get(), POLLIN, 0}};
    (void)::poll(fds, 2, kStatusPollMs);
    signals->drain();
    eventfd_t ignored = 0;
    (void)::eventfd_read(wake.get(), &ignored);

    const int received = signals->count();
    if (received > signals_handled && signals_handled == 0) {
      write_line(signal_name(signals->first()) + ": stopping " + name + " (" +
                 signal_name(stop_signal) + " to each process group, SIGKILL after " +
                 duration_text(stop_grace) + ")");
      stopper = start_thread_without_signals([&, fd = wake.get()] {
        try {
          supervisor->stop(name);
        } catch (const SupervisorError&) {
          // Only ShutDown: the destructor stops it anyway.
        }
        stopped.store(true);
        ::eventfd_write(fd, 1);
      });
    }
    if (received >= 2 && !forced) {
      forced = true;
      write_line("second " + signal_name(signals->first()) + ": killing " + name + " at once");
      // On the Supervisor's thread, which alone knows which pids are still unreaped (a kill
      // from here could reach a pid it has just reaped and the system has given to another
      // process). It reaches the leftovers of runs already reaped too, and leaves every
      // instance Stopped whether or not the stopper's stop() got there first.
      try {
        supervisor->kill(name);
      } catch (const SupervisorError&) {
        // Only ShutDown: the destructor stops it anyway.
      }
    }
    const std::vector<ProcessStatus> statuses = supervisor->status();
    signals_handled = received;
    reporter.on_status(statuses);
    if (signals_handled != 0) {
      if (stopped.load()) return forced ? signals->exit_status() : kExitOk;
      continue;
    }
    if (all_stopped(statuses)) return exit_status_of(statuses);
  }
}

}  // namespace procpool::tool
