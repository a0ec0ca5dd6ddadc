#include "supervise/supervise_options.hpp"

#include <algorithm>  // std::find_if
#include <cstring>    // std::strcmp
#include <sstream>    // the generated option list
#include <vector>     // tokens

#include <boost/program_options.hpp>  // option parsing

#include "common/duration.hpp"
#include "common/exit_status.hpp"
#include "common/option_values.hpp"
#include "common/usage.hpp"
#include "supervise/supervise_option_values.hpp"

namespace procpool::tool {
namespace {

namespace po = boost::program_options;

constexpr std::string_view kProgram = "procpool supervise";
using Numprocs = Count<1, 1024>;
using Starts = Count<0, 1000000>;
using LogKeep = Count<0, 1000>;

constexpr std::string_view kIntro =
    R"(Usage: procpool supervise [OPTIONS] -- CMD [ARGS...]

Runs CMD (with ARGS) and keeps it running, as supervisord, PM2 or a systemd service would:
it is restarted when it exits, with backoff after broken starts, and stopped with its whole
process group. Life-cycle events go to standard error, one line each:
  procpool supervise: web:0 started (pid 123)
  procpool supervise: web:0 exited: exit code 1 after 0.2 s; restarting in 150 ms
  procpool supervise: web:0 crash loop: 5 broken starts in a row; next start in 2.4 s
CMD's own standard output and error are passed through to ours unless --log is given.

)";

constexpr std::string_view kDetails =
    R"(A start is broken when the program exits before it is ready, or within --min-uptime of
becoming ready. The n-th broken start in a row waits a random time below
min(--max-backoff, --initial-backoff * 2^(n-1)); a run that stayed up resets the count.

SIGTERM or SIGINT: the stop signal goes to each instance's process group, SIGKILL after
--stop-grace; then procpool supervise exits 0. A second SIGTERM or SIGINT SIGKILLs the process
groups at once (exit 128 + the first signal); a third ends procpool supervise immediately.

Exit status: when every instance has stopped for good (--restart never or on-failure, or
--give-up-after reached), with one instance its exit status (128 + the signal if a signal
killed it), with more 0 if every one exited 0 and 1 otherwise; 0 after a stop by SIGTERM or
SIGINT; 2 usage error, or CMD missing or not executable, or it could not be started.

Example:
  procpool supervise --name web --numprocs 2 --ready tcp:8080 -- ./web-server --port 8080
)";

po::options_description visible_options() {
  po::options_description options("Options", kHelpWidth, kHelpDescriptionColumn);
  options.add_options()                                       //
      ("help,h", "show this help and exit")                   //
      ("name", po::value<std::string>()->value_name("NAME"),  //
       "the program's name in messages; instances are NAME:0, NAME:1 ... (default: CMD's "
       "basename)")                                                                //
      ("numprocs", po::value<Numprocs>()->value_name("N"),                         //
       "instances to run, 1 to 1024 (default: 1)")                                 //
      ("restart", po::value<RestartModeValue>()->value_name("MODE"),               //
       "always, on-failure (not after exit status 0) or never (default: always)")  //
      ("ready", po::value<ReadinessValue>()->value_name("HOW"),                    //
       "when a start counts as ready: started (at exec), notify (READY=1 to $NOTIFY_SOCKET, "
       "sd_notify) or tcp:PORT (127.0.0.1:PORT accepts) (default: started)")  //
      ("start-timeout", po::value<Duration>()->value_name("DURATION"),        //
       "not ready this long after the exec: stopped, and counted as a broken start (default: "
       "60s)")                                                     //
      ("watchdog", po::value<Duration>()->value_name("DURATION"),  //
       "once ready, the program must send WATCHDOG=1 to $NOTIFY_SOCKET at least this often "
       "(it gets WATCHDOG_USEC), else it is SIGKILLed and restarted (default: 0 = none)")  //
      ("stop-signal", po::value<StopSignalValue>()->value_name("SIG"),                     //
       "the signal that stops it: TERM, INT, HUP, QUIT, KILL, USR1, USR2 or a number (default: "
       "TERM)")                                                                         //
      ("stop-grace", po::value<Duration>()->value_name("DURATION"),                     //
       "how long after the stop signal its process group is SIGKILLed (default: 10s)")  //
      ("min-uptime", po::value<Duration>()->value_name("DURATION"),                     //
       "ready this long and a run is stable: the count of broken starts is reset (default: "
       "1s)")                                                             //
      ("initial-backoff", po::value<Duration>()->value_name("DURATION"),  //
       "the bound of the first backoff (default: 100ms)")                 //
      ("max-backoff", po::value<Duration>()->value_name("DURATION"),      //
       "the largest bound a backoff is drawn below (default: 10s)")       //
      ("crash-loop-after", po::value<Starts>()->value_name("N"),          //
       "report a crash loop after N broken starts in a row; it keeps retrying (default: 5; "
       "0 = never)")                                                                             //
      ("give-up-after", po::value<Starts>()->value_name("N"),                                    //
       "leave an instance stopped after N broken starts in a row (default: 0 = never give up)")  //
      ("memory-limit", po::value<ByteSize>()->value_name("SIZE"),                                //
       "resident memory of its process group above which it is stopped gracefully and restarted: "
       "512K, 64M, 1G or bytes (default: none)")                                  //
      ("memory-hard-limit", po::value<ByteSize>()->value_name("SIZE"),            //
       "above this it is SIGKILLed and restarted (default: none)")                //
      ("env", po::value<std::vector<EnvAssignment>>()->value_name("NAME=VALUE"),  //
       "set an environment variable for it, on top of ours (repeatable)")         //
      ("chdir", po::value<std::string>()->value_name("DIR"),                      //
       "run it in DIR (default: our working directory)")                          //
      ("log", po::value<std::string>()->value_name("FILE"),                       //
       "append its standard output and error to FILE (created 0600), rotated by size, instead "
       "of passing them through to ours")                                                   //
      ("log-max-size", po::value<ByteSize>()->value_name("SIZE"),                           //
       "with --log: rotate FILE once it holds SIZE (FILE -> FILE.1 -> ...; default: 10M)")  //
      ("log-keep", po::value<LogKeep>()->value_name("N"),                                   //
       "with --log: rotated files kept, 0 to 1000 (default: 3)")                            //
      ("quiet,q", po::bool_switch(), "print no life-cycle lines (errors still are)");
  return options;
}

std::string help_text() {
  std::ostringstream text;
  text << kIntro << options_text(visible_options()) << '\n' << kDetails;
  return std::move(text).str();
}

template <class T>
const T* value_of(const po::variables_map& values, const char* name) {
  const auto found = values.find(name);
  return found == values.end() ? nullptr : &found->second.as<T>();
}

}  // namespace

std::string supervise_help() { return help_text(); }

std::optional<SuperviseOptions> parse_supervise_options(std::span<char* const> args, int& status) {
  // Everything after "--" is CMD's command line, split off before parsing so that po never
  // sees (or rejects) CMD's own options.
  const auto dashes = std::find_if(args.begin(), args.end(),
                                   [](const char* arg) { return std::strcmp(arg, "--") == 0; });
  const std::vector<std::string> ours(args.begin(), dashes);

  po::options_description options = visible_options();
  options.add_options()("stray", po::value<std::vector<std::string>>());
  po::positional_options_description positional;
  positional.add("stray", -1);
  po::variables_map values;
  try {
    po::store(po::command_line_parser(ours)
                  .options(options)
                  .positional(positional)
                  .style(kOptionStyle)
                  .run(),
              values);
    po::notify(values);
  } catch (const po::error& e) {
    status = usage_error(kProgram, e.what());
    return {};
  }
  if (values.count("help") != 0) {
    status = print_help(help_text());
    return {};
  }
  const auto refuse = [&](const std::string& message) {
    status = usage_error(kProgram, message);
    return std::nullopt;
  };
  if (values.count("stray") != 0) {
    const std::string& first = values["stray"].as<std::vector<std::string>>().front();
    return refuse(dashes == args.end() ? "missing '--' before the command '" + first + "'"
                                       : "unexpected argument '" + first + "' before '--'");
  }
  if (dashes == args.end()) return refuse("missing '-- CMD': give the command after '--'");
  if (dashes + 1 == args.end() || **(dashes + 1) == '\0') return refuse("missing CMD after '--'");

  SuperviseOptions result;
  ProgramSpec& spec = result.spec;
  spec.command = *(dashes + 1);
  spec.args.assign(dashes + 2, args.end());
  const std::size_t slash = spec.command.find_last_of('/');
  spec.name = slash == std::string::npos ? spec.command : spec.command.substr(slash + 1);
  if (const auto* name = value_of<std::string>(values, "name")) spec.name = *name;
  if (spec.name.empty() || spec.name.find(':') != std::string::npos) {
    return refuse("invalid --name '" + spec.name + "': expected a non-empty name without ':'");
  }
  if (const auto* n = value_of<Numprocs>(values, "numprocs")) spec.numprocs = n->value;
  if (const auto* mode = value_of<RestartModeValue>(values, "restart")) {
    spec.restart_mode = mode->value;
  }
  if (const auto* ready = value_of<ReadinessValue>(values, "ready")) {
    spec.readiness = ready->mode;
    spec.ready_port = ready->port;
  }
  const auto set_duration = [&](const char* name, std::chrono::milliseconds& field) {
    if (const auto* d = value_of<Duration>(values, name)) field = d->value;
  };
  set_duration("start-timeout", spec.start_timeout);
  set_duration("watchdog", spec.watchdog);
  set_duration("stop-grace", spec.stop_grace);
  set_duration("min-uptime", spec.restart.min_uptime);
  set_duration("initial-backoff", spec.restart.initial_backoff);
  set_duration("max-backoff", spec.restart.max_backoff);
  if (spec.start_timeout.count() == 0) {
    return refuse("invalid --start-timeout '0': expected a positive duration");
  }
  if (const auto* sig = value_of<StopSignalValue>(values, "stop-signal")) {
    spec.stop_signal = sig->value;
  }
  if (const auto* n = value_of<Starts>(values, "crash-loop-after")) {
    spec.restart.crash_loop_after = n->value;
  }
  if (const auto* n = value_of<Starts>(values, "give-up-after")) {
    spec.restart.give_up_after = n->value;
  }
  if (const auto* size = value_of<ByteSize>(values, "memory-limit")) {
    spec.memory_soft_limit = size->value;
  }
  if (const auto* size = value_of<ByteSize>(values, "memory-hard-limit")) {
    spec.memory_hard_limit = size->value;
  }
  if (const auto* env = value_of<std::vector<EnvAssignment>>(values, "env")) {
    for (const EnvAssignment& assignment : *env) {
      spec.env.emplace_back(assignment.name, assignment.value);
    }
  }
  if (const auto* dir = value_of<std::string>(values, "chdir")) spec.working_directory = *dir;

  const auto* log = value_of<std::string>(values, "log");
  const auto* max_size = value_of<ByteSize>(values, "log-max-size");
  const auto* keep = value_of<LogKeep>(values, "log-keep");
  if (log == nullptr && (max_size != nullptr || keep != nullptr)) {
    return refuse(std::string(max_size != nullptr ? "--log-max-size" : "--log-keep") +
                  " needs --log FILE");
  }
  if (log != nullptr) {
    if (log->empty()) return refuse("invalid --log '': the file name is empty");
    // Both streams to one file: the Supervisor gives them one writer, so one rotation.
    OutputSink sink;
    sink.file = *log;
    if (max_size != nullptr) sink.max_bytes = max_size->value;
    if (keep != nullptr) sink.keep = keep->value;
    spec.stdout_sink = sink;
    spec.stderr_sink = sink;
  }
  result.quiet = values["quiet"].as<bool>();
  return result;
}

}  // namespace procpool::tool
