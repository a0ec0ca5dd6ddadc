#include "map/map_options.hpp"

#include <unistd.h>  // isatty

#include <algorithm>  // std::find_if
#include <cstring>    // std::strcmp
#include <sstream>    // the generated option list

#include <boost/program_options.hpp>  // option parsing

#include "common/exit_status.hpp"
#include "common/option_values.hpp"
#include "common/usage.hpp"

namespace procpool::tool {
namespace {

namespace po = boost::program_options;

constexpr std::string_view kProgram = "procpool map";
using Retries = Count<0, 10000>;

constexpr std::string_view kIntro =
    R"(Usage: procpool map [OPTIONS] -- WORKER [ARGS...]

Runs handler NAME of the procpool worker program WORKER (started with ARGS) on every line of
standard input, in a pool of worker processes. Each line, without its newline, is one task's
payload; each result is written to standard output followed by a newline, in input order unless
--unordered. A last line without a newline is processed too.

)";

constexpr std::string_view kDetails =
    R"(A line whose task fails writes NOTHING to standard output (so output lines no longer line up
with input lines), or an empty line with --empty-on-failure; the failure goes to standard
error as
  procpool map: line L: KIND: MESSAGE
where L counts input lines from 1 and KIND is HandlerError, WorkerCrashed, Timeout, ...
For WorkerCrashed, MESSAGE says how the worker ended (exit code, or signal and core dump), how
long it had been up, what it was running, and its last standard error lines, indented below.
Results are written as they are: a result containing newlines spans several output lines.
Lines longer than 64 MiB fail with PayloadTooLarge. The workers' own standard output and
standard error go to standard error, a whole line at a time (never into the progress line).

Interruption: on SIGINT (Ctrl-C) or SIGTERM, procpool map reads no more input and starts no
new task; tasks already running get --grace to finish (a worker may also run the few tasks
already handed to it), then the workers are stopped. Every result that completed is written
(in input order unless --unordered), and standard error ends with
  procpool map: interrupted by SIGINT: R results written, F failed, N lines not completed
  procpool map: not completed: lines 7-9, 12, 15-
N counts the lines read whose task did not complete; "15-" means line 15 and every line after
it (not read, or read and not started): run those lines again to finish the job. A second
SIGINT or SIGTERM stops at once: the workers are killed, the results already in are written,
and the rest is reported as not completed. A third one, or a second one while standard output
has been blocked for 100 ms, ends procpool map immediately, writing nothing more.

If writing standard output fails (EPIPE, ENOSPC, ...), procpool map stops as at a second
SIGINT and reports, as after one, how many results were written and which lines were not
completed (a result that did not get out in full among them).

Exit status: 0 every task succeeded; 1 some task failed, or reading input or writing output
failed; 2 usage error, standard output closed or read-only, or the pool could not start
(missing or failing worker, unknown handler);
130 interrupted by SIGINT, 143 interrupted by SIGTERM (128 + the signal number, as the shell
reports a command killed by it), whether or not some task failed.

Example:
  seq 1 1000000 | procpool map --workers 2 -- procpool-worker-increment
)";

// The options a user sees in the help; the generated list is the one the parser uses.
po::options_description visible_options() {
  po::options_description options("Options", kHelpWidth, kHelpDescriptionColumn);
  options.add_options()                                                             //
      ("help,h", "show this help and exit")                                         //
      ("workers", po::value<WorkerCount>()->value_name("N"),                        //
       "worker processes: 1 to 1024, or auto (default: auto, the number of CPUs)")  //
      ("handler", po::value<std::string>()->value_name("NAME"),                     //
       "the handler to run (default: main)")                                        //
      ("retries", po::value<Retries>()->value_name("N"),                            //
       "run a task again, up to N times, when its worker dies under it or it times out "
       "(default: 0; a handler that throws is not retried)")      //
      ("timeout", po::value<Duration>()->value_name("DURATION"),  //
       "fail a task that runs longer than DURATION: 500ms, 2s, 1m, or a plain number of seconds "
       "(default: 0 = no limit). Each worker then runs one task at a time, so that time spent "
       "waiting is not counted")                                //
      ("grace", po::value<Duration>()->value_name("DURATION"),  //
       "on SIGINT or SIGTERM, how long running tasks may take to finish before their workers "
       "are killed (default: 30s; 0 = kill them at once). Also how long a worker may take to "
       "exit at the end of the input")                              //
      ("unordered", po::bool_switch(),                              //
       "write results as they complete instead of in input order")  //
      ("empty-on-failure", po::bool_switch(),                       //
       "write an empty line for each line whose task failed, so that output lines stay aligned "
       "with input lines (in input order)")  //
      ("progress", po::bool_switch(),        //
       "show progress on standard error (the default when it is a terminal), with the latest "
       "report a running line's handler emitted (Task::emit)")    //
      ("no-progress", po::bool_switch(), "do not show progress")  //
      ("stats", po::bool_switch(),                                //
       "print a summary on standard error at the end: tasks, failed, retried, restarts, elapsed "
       "time, lines/s");
  return options;
}

std::string help_text() {
  std::ostringstream text;
  text << kIntro << options_text(visible_options()) << '\n' << kDetails;
  return std::move(text).str();
}

}  // namespace

std::string map_help() { return help_text(); }

std::optional<MapOptions> parse_map_options(std::span<char* const> args, int& status) {
  // Everything after "--" is the worker's command line, not ours: it is split off before
  // parsing, so that po never sees (or rejects) the worker's own options.
  const auto dashes = std::find_if(args.begin(), args.end(),
                                   [](const char* arg) { return std::strcmp(arg, "--") == 0; });
  const std::vector<std::string> ours(args.begin(), dashes);

  po::options_description options = visible_options();
  // Arguments that are no option, collected to say what is wrong with them.
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
  if (values.count("stray") != 0) {
    const std::string& first = values["stray"].as<std::vector<std::string>>().front();
    status = usage_error(kProgram, dashes == args.end()
                                       ? "missing '--' before the worker command '" + first + "'"
                                       : "unexpected argument '" + first + "' before '--'");
    return {};
  }
  if (dashes == args.end()) {
    status = usage_error(kProgram, "missing '-- WORKER': give the worker program after '--'");
    return {};
  }
  if (dashes + 1 == args.end() || **(dashes + 1) == '\0') {
    status = usage_error(kProgram, "missing WORKER after '--'");
    return {};
  }

  MapOptions map;
  map.worker = *(dashes + 1);
  map.worker_args.assign(dashes + 2, args.end());
  map.workers =
      values.count("workers") != 0 ? values["workers"].as<WorkerCount>().value : cpu_count();
  if (values.count("retries") != 0) map.retries = values["retries"].as<Retries>().value;
  if (values.count("timeout") != 0) map.timeout = values["timeout"].as<Duration>().value;
  if (values.count("grace") != 0) map.grace = values["grace"].as<Duration>().value;
  if (values.count("handler") != 0) {
    map.handler = values["handler"].as<std::string>();
    if (map.handler.empty()) {
      status = usage_error(kProgram, "invalid --handler '': the handler name is empty");
      return {};
    }
  }
  const bool progress = values["progress"].as<bool>();
  const bool no_progress = values["no-progress"].as<bool>();
  if (progress && no_progress) {
    status = usage_error(kProgram, "--progress and --no-progress contradict each other");
    return {};
  }
  map.progress = progress || (!no_progress && ::isatty(STDERR_FILENO) == 1);
  map.unordered = values["unordered"].as<bool>();
  map.empty_on_failure = values["empty-on-failure"].as<bool>();
  map.stats = values["stats"].as<bool>();
  return map;
}

}  // namespace procpool::tool
