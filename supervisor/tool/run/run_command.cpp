#include "run/run_command.hpp"

#include <poll.h>          // poll
#include <signal.h>        // SIGPIPE
#include <sys/eventfd.h>   // program events wake the main loop
#include <sys/prctl.h>     // PR_SET_DUMPABLE
#include <sys/signalfd.h>  // SIGHUP
#include <unistd.h>        // STDERR_FILENO

#include <cerrno>    // errno
#include <chrono>    // the watchdog period
#include <optional>  // the daemon
#include <string>    // messages
#include <vector>    // poll fds

#include <boost/json.hpp>
#include <boost/program_options.hpp>

#include "common/control_client.hpp"  // socket_of
#include "common/error_stream.hpp"    // write_all
#include "common/event_reporter.hpp"
#include "common/exit_status.hpp"
#include "common/interrupt_signals.hpp"
#include "common/text_format.hpp"  // errno_text
#include "common/usage.hpp"
#include "config/daemon_config.hpp"
#include "procpool/orphan_guard.hpp"
#include "run/control_endpoint.hpp"
#include "run/control_job.hpp"
#include "run/control_protocol.hpp"
#include "run/control_server.hpp"
#include "run/daemon.hpp"
#include "run/metrics_server.hpp"
#include "run/service_notifier.hpp"

namespace procpool::tool {
namespace {

namespace po = boost::program_options;

constexpr std::string_view kProgram = "procpool run";

std::string help_text(const po::options_description& options) {
  return "Usage: procpool run [OPTIONS] CONFIG.toml\n"
         "\n"
         "Runs the config's programs (each once those it depends on are ready) and pools in the\n"
         "foreground, and answers `procpool status`, `start`, `stop`, `restart`, `reload`,\n"
         "`logs` and `shutdown` on its control socket. SIGHUP or `procpool reload` re-read the\n"
         "config and apply what changed (a rolling, readiness-gated update of each changed\n"
         "program). SIGTERM, SIGINT or a shutdown request stop the programs in reverse\n"
         "dependency order, drain the pools, and exit 0; a second signal kills everything.\n"
         "Config format: docs/config.md; control protocol: docs/control.md.\n"
         "\n" +
         options_text(options) +
         "\n"
         "Exit status: 0 stopped on request; 1 the config has problems, or a pool could not\n"
         "start; 2 usage error, another daemon runs on the socket, or the metrics address\n"
         "cannot be served; 3 a program with on_give_up = \"exit\" gave up.\n";
}

void write_text(const std::string& text) {
  (void)write_all(STDERR_FILENO, text.data(), text.size());
}

// Re-reads `file` and applies it: the reply. A config with problems changes nothing.
boost::json::object reload(const std::string& file, Daemon& daemon, EventReporter& reporter) {
  reporter.message("reloading " + file);
  ConfigLoad load = load_config_file(file);
  if (!load.ok()) {
    std::string problems = format_problems(file, load.problems);
    if (!problems.empty() && problems.back() == '\n') problems.pop_back();
    reporter.message("reload: " + file + " has problems; nothing changed\n" + problems);
    daemon.note_refused_reload();
    boost::json::object reply;
    reply["ok"] = false;
    reply["error"] = file + " has problems; nothing changed:\n" + problems;
    return reply;
  }
  boost::json::object reply = daemon.reload(std::move(load.config));
  std::string done = "reload done in ";
  done.append(std::to_string(static_cast<long>(reply["seconds"].as_double() * 1000))).append(" ms");
  if (!reply["ok"].as_bool()) done.append(": ").append(reply["error"].as_string());
  reporter.message(done);
  return reply;
}

// The reply to one request line of client `client`; sets `shutdown` for a shutdown request.
// start, stop, restart and reload run as a job (control_job.hpp): "" then, the reply follows.
std::string handle_request(const std::string& line, std::uint64_t client, Daemon& daemon,
                           bool& shutdown, const std::string& file, EventReporter& reporter,
                           ControlJob& job) {
  std::string error;
  const std::optional<ControlRequest> request = parse_request(line, error);
  if (!request) return error_reply(error);
  using Command = ControlRequest::Command;
  switch (request->command) {
    case Command::Shutdown:
      shutdown = true;
      return "{\"ok\":true}\n";
    case Command::Status:
      return boost::json::serialize(daemon.status(request->name)) + "\n";
    default:
      break;
  }
  if (job.busy()) {
    return error_reply("busy: the daemon is doing a " + job.what() + "; try again once it is done");
  }
  if (request->command == Command::Reload) {
    job.start("reload", client, [&daemon, &file, &reporter] {
      return boost::json::serialize(reload(file, daemon, reporter)) + "\n";
    });
  } else {
    const char* verb = request->command == Command::Start  ? "start"
                       : request->command == Command::Stop ? "stop"
                                                           : "restart";
    job.start(std::string(verb) + " " + request->name, client,
              [&daemon, command = request->command, name = request->name] {
                return boost::json::serialize(daemon.control(command, name)) + "\n";
              });
  }
  return "";
}

}  // namespace

int run_run_command(std::span<char* const> args, const CommandContext& /*context*/) {
  po::options_description options("Options", kHelpWidth, kHelpDescriptionColumn);
  options.add_options()  //
      ("socket", po::value<std::string>()->value_name("PATH"),
       "the control socket (default: $XDG_RUNTIME_DIR/procpool/procpool.sock; as root "
       "/run/procpool/procpool.sock; else /tmp/procpool-UID/procpool.sock)")  //
      ("metrics", po::value<std::string>()->value_name("ADDRESS"),
       "serve Prometheus metrics at http://ADDRESS/metrics: PORT (on 127.0.0.1), HOST:PORT or "
       "[V6]:PORT; port 0 picks a free one (docs/metrics.md)")  //
      ("help,h", "show this help and exit");
  int status = kExitOk;
  const std::optional<po::variables_map> values =
      parse_command_line(kProgram, args, options, "config", status);
  if (!values) return status;
  if (values->count("help") != 0) return print_help(help_text(options));
  const std::optional<std::string> config =
      one_positional(kProgram, *values, "config", "CONFIG.toml", true, status);
  if (!config) return status;
  const std::string& file = *config;
  const std::string socket_path = socket_of(*values);

  ConfigLoad load = load_config_file(file);
  if (!load.ok()) {
    write_text(format_problems(file, load.problems) + std::string(kProgram) + ": " + file +
               " has problems; nothing started\n");
    return kExitFailed;
  }

  // While we have one thread (it forks): what our programs and workers leave behind dies with
  // us, even by SIGKILL. Destroyed last, once everything is stopped.
  std::optional<OrphanGuard> guard;
  try {
    guard.emplace();
  } catch (const Error& e) {
    write_text(std::string(kProgram) + ": " + e.what() + "\n");
    return kExitFailed;
  }
  // Before any thread starts: it takes NOTIFY_SOCKET and WATCHDOG_* out of the environment.
  ServiceNotifier notifier;
  // SIGHUP reloads: blocked in every thread (those started from here on inherit the mask) and
  // read from a signalfd by the main loop. Children get an empty mask (launcher.hpp).
  sigset_t hangup;
  sigemptyset(&hangup);
  sigaddset(&hangup, SIGHUP);
  ::pthread_sigmask(SIG_BLOCK, &hangup, nullptr);
  const UniqueFd hangup_fd(::signalfd(-1, &hangup, SFD_CLOEXEC | SFD_NONBLOCK));
  if (!hangup_fd) {
    write_text(std::string(kProgram) + ": signalfd: " + errno_text(errno) + "\n");
    return kExitFailed;
  }
  // Not dumpable: a process of the same uid (one of our programs, say) can neither ptrace the
  // daemon nor open its fds (pool segments, the control socket) through /proc/PID/fd. Its
  // programs are dumpable again once exec'ed. Also: no core dump of the daemon.
  (void)::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  ::signal(SIGPIPE, SIG_IGN);  // a client gone mid-reply is an EPIPE, not our death
  const std::optional<unsigned> control_group = load.config.control_group;
  ControlEndpoint endpoint;
  try {
    endpoint = open_control_endpoint(socket_path, load.config.control_group);
  } catch (const ControlEndpointError& e) {
    write_text(std::string(kProgram) + ": " + e.what() + "\n");
    return kExitUsage;
  }
  struct CloseEndpoint {
    ControlEndpoint& endpoint;
    ~CloseEndpoint() { close_control_endpoint(endpoint); }
  } close_endpoint{endpoint};

  const UniqueFd wake(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wake) {
    write_text(std::string(kProgram) + ": eventfd: " + errno_text(errno) + "\n");
    return kExitFailed;
  }
  EventReporter reporter(STDERR_FILENO, "procpool run: ", false,
                         EventReporter::Settings::ConfigFile);
  std::optional<Daemon> daemon;          // after the reporter and wake: its events use them
  std::optional<MetricsServer> metrics;  // after the daemon: it renders the daemon's metrics
  std::optional<InterruptSignals> signals;
  {
    // The Supervisor's and the pools' threads start with SIGINT and SIGTERM blocked: only this
    // thread takes them.
    const InterruptSignalsBlocked blocked;
    try {
      daemon.emplace(std::move(load.config), reporter, wake.get());
      if (values->count("metrics") != 0) {
        metrics.emplace((*values)["metrics"].as<std::string>(),
                        [&daemon] { return daemon->metrics_text(); });
        reporter.message("metrics at http://" + metrics->endpoint() + "/metrics");
      }
      daemon->start_pools();
    } catch (const MetricsServerError& e) {
      reporter.message(std::string("cannot start: ") + e.what());
      return kExitUsage;
    } catch (const Error& e) {
      reporter.message(std::string("cannot start: ") + e.what());
      return kExitFailed;
    }
    daemon->start_ready_programs();
    signals.emplace();
  }
  reporter.message("control socket " + socket_path);
  if (!notifier.error().empty()) reporter.message("not notifying systemd: " + notifier.error());
  const auto counts = [&] {
    return std::to_string(daemon->ready_programs()) + " of " +
           std::to_string(daemon->program_count()) + " programs ready";
  };
  std::string last_status;

  bool shutdown = false;
  bool announced = false;
  std::string gave_up;
  ControlJob job(wake.get());  // destroyed before the daemon: it waits for its thread
  bool reload_wanted = false;  // a SIGHUP while a job ran
  ControlServer server(
      endpoint.listen.get(),
      [&](const std::string& line, std::uint64_t client) {
        return handle_request(line, client, *daemon, shutdown, file, reporter, job);
      },
      control_group);
  const auto start_reload = [&] {
    job.start("reload", 0, [&daemon, &file, &reporter] {
      (void)reload(file, *daemon, reporter);
      return std::string();
    });
  };
  std::vector<pollfd> fds;
  while (!shutdown && signals->count() == 0 && (gave_up = daemon->gave_up_exiting()).empty()) {
    if (!announced && daemon->all_ready()) {
      announced = true;
      reporter.message("every program is ready");
      last_status = counts();
      notifier.notify("READY=1\nSTATUS=" + last_status);
    } else if (announced && notifier.enabled()) {
      if (std::string now = counts(); now != last_status) {
        last_status = std::move(now);
        notifier.notify("STATUS=" + last_status);
      }
    }
    const std::optional<std::chrono::milliseconds> ping = notifier.ping_if_due();
    fds.clear();
    fds.push_back({signals->fd(), POLLIN, 0});
    fds.push_back({wake.get(), POLLIN, 0});
    fds.push_back({hangup_fd.get(), POLLIN, 0});
    server.add_poll_fds(fds);
    if (::poll(fds.data(), fds.size(), ping ? static_cast<int>(ping->count()) : -1) < 0 &&
        errno != EINTR) {
      reporter.message("poll: " + errno_text(errno));
      break;
    }
    if (fds[1].revents != 0) {
      eventfd_t count = 0;
      (void)::eventfd_read(wake.get(), &count);
      if (auto done = job.collect()) {
        if (done->first != 0) server.deliver(done->first, done->second);
        if (reload_wanted) {
          reload_wanted = false;
          start_reload();
        }
      }
      daemon->start_ready_programs();
    }
    if (fds[2].revents != 0) {
      signalfd_siginfo info;
      while (::read(hangup_fd.get(), &info, sizeof info) == sizeof info) {
      }
      if (job.busy()) {
        reload_wanted = true;
      } else {
        start_reload();
      }
    }
    server.serve(fds, 3);
  }
  // A job in progress finishes first (a reload: at most its ready timeouts); a second signal
  // meanwhile kills everything, which ends it at once.
  if (job.busy()) reporter.message("waiting for the " + job.what() + " in progress");
  bool killed = false;
  while (job.busy()) {
    if (!killed && signals->count() >= 2) {
      killed = true;
      daemon->kill_everything();
    }
    pollfd wait[2] = {{signals->fd(), POLLIN, 0}, {wake.get(), POLLIN, 0}};
    if (::poll(wait, 2, -1) < 0 && errno != EINTR) break;
    signals->drain();
    eventfd_t count = 0;
    (void)::eventfd_read(wake.get(), &count);
    if (auto done = job.collect(); done && done->first != 0)
      server.deliver(done->first, done->second);
  }
  signals->drain();
  reporter.message(!gave_up.empty() ? gave_up + ": stopping"
                   : shutdown       ? "shutdown requested: stopping"
                                    : "got " + signal_name(signals->first()) + ": stopping");
  notifier.notify("STOPPING=1\nSTATUS=stopping");
  metrics.reset();
  daemon->stop(signals->count() >= 2);
  daemon.reset();
  reporter.message("stopped");
  return gave_up.empty() ? kExitOk : kExitGaveUp;
}

}  // namespace procpool::tool
