#include "map/map_options.hpp"

#include <sched.h>   // sched_getaffinity
#include <unistd.h>  // isatty, sysconf

#include <algorithm>  // std::find_if
#include <charconv>   // std::from_chars
#include <cstring>    // std::strcmp

#include <boost/program_options.hpp>  // option parsing

#include "common/duration.hpp"
#include "common/error_stream.hpp"
#include "map/map_command.hpp"

namespace procpool::tool {
namespace {

constexpr std::string_view kHelp =
    R"(Usage: procpool map [OPTIONS] -- WORKER [ARGS...]

Runs handler NAME of the procpool worker program WORKER (started with ARGS) on every line of
standard input, in a pool of worker processes. Each line, without its newline, is one task's
payload; each result is written to standard output followed by a newline, in input order unless
--unordered. A last line without a newline is processed too.

Options:
  -h, --help          show this help and exit
  --workers N         worker processes (default: the number of CPUs)
  --handler NAME      the handler to run (default: main)
  --retries N         run a task again, up to N times, when its worker dies under it or it
                      times out (default: 0; a handler that throws is not retried)
  --timeout DURATION  fail a task that runs longer than DURATION: 500ms, 2s, 1m, or a plain
                      number of seconds (default: 0 = no limit). Each worker then runs one task
                      at a time, so that time spent waiting is not counted
  --grace DURATION    on SIGINT or SIGTERM, how long running tasks may take to finish before
                      their workers are killed (default: 30s; 0 = kill them at once). Also how
                      long a worker may take to exit at the end of the input
  --unordered         write results as they complete instead of in input order
  --empty-on-failure  write an empty line for each line whose task failed, so that output
                      lines stay aligned with input lines (in input order)
  --progress          show progress on standard error (the default when it is a terminal)
  --no-progress       do not show progress
  --stats             print a summary on standard error at the end: tasks, failed, retried,
                      restarts, elapsed time, lines/s

A line whose task fails writes NOTHING to standard output (so output lines no longer line up
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

// Before the run sets up standard error: straight to it.
int usage_error(const std::string& message) {
  const std::string text =
      "procpool map: " + message + "\nTry 'procpool map --help' for more information.\n";
  (void)write_all(STDERR_FILENO, text.data(), text.size());
  return kExitUsage;
}

std::optional<unsigned> parse_unsigned(std::string_view text, unsigned min, unsigned max) {
  unsigned value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || error != std::errc() || end != text.data() + text.size()) return {};
  if (value < min || value > max) return {};
  return value;
}

unsigned cpu_count() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) {
    return static_cast<unsigned>(CPU_COUNT(&set));
  }
  const long online = ::sysconf(_SC_NPROCESSORS_ONLN);
  return online > 0 ? static_cast<unsigned>(online) : 1;
}

}  // namespace

std::string_view map_help() { return kHelp; }

std::optional<MapOptions> parse_map_options(std::span<char* const> args, int& status) {
  namespace po = boost::program_options;
  const auto dashes = std::find_if(args.begin(), args.end(),
                                   [](const char* arg) { return std::strcmp(arg, "--") == 0; });
  const std::vector<std::string> ours(args.begin(), dashes);

  po::options_description options;
  options.add_options()                                  //
      ("help,h", "")                                     //
      ("workers", po::value<std::string>())              //
      ("handler", po::value<std::string>())              //
      ("retries", po::value<std::string>())              //
      ("timeout", po::value<std::string>())              //
      ("grace", po::value<std::string>())                //
      ("unordered", po::bool_switch())                   //
      ("empty-on-failure", po::bool_switch())            //
      ("progress", po::bool_switch())                    //
      ("no-progress", po::bool_switch())                 //
      ("stats", po::bool_switch())                       //
      ("stray", po::value<std::vector<std::string>>());  // arguments that are no option
  po::positional_options_description positional;
  positional.add("stray", -1);
  po::variables_map values;
  try {
    // No abbreviations: `--work 2` must not silently mean --workers.
    const int style = po::command_line_style::unix_style & ~po::command_line_style::allow_guessing;
    po::store(
        po::command_line_parser(ours).options(options).positional(positional).style(style).run(),
        values);
    po::notify(values);
  } catch (const po::error& e) {
    status = usage_error(e.what());
    return {};
  }

  if (values.count("help") != 0) {
    write_all(STDOUT_FILENO, kHelp.data(), kHelp.size());
    status = kExitOk;
    return {};
  }
  if (values.count("stray") != 0) {
    const std::string& first = values["stray"].as<std::vector<std::string>>().front();
    status =
        usage_error(dashes == args.end() ? "missing '--' before the worker command '" + first + "'"
                                         : "unexpected argument '" + first + "' before '--'");
    return {};
  }
  if (dashes == args.end()) {
    status = usage_error("missing '-- WORKER': give the worker program after '--'");
    return {};
  }
  if (dashes + 1 == args.end() || **(dashes + 1) == '\0') {
    status = usage_error("missing WORKER after '--'");
    return {};
  }

  MapOptions map;
  map.worker = *(dashes + 1);
  map.worker_args.assign(dashes + 2, args.end());
  map.workers = cpu_count();
  if (values.count("workers") != 0) {
    const std::string& text = values["workers"].as<std::string>();
    const auto workers = parse_unsigned(text, 1, 1024);
    if (!workers) {
      status = usage_error("invalid --workers '" + text + "': expected a whole number, 1 to 1024");
      return {};
    }
    map.workers = *workers;
  }
  if (values.count("retries") != 0) {
    const std::string& text = values["retries"].as<std::string>();
    const auto retries = parse_unsigned(text, 0, 10000);
    if (!retries) {
      status = usage_error("invalid --retries '" + text + "': expected a whole number, 0 to 10000");
      return {};
    }
    map.retries = *retries;
  }
  if (values.count("timeout") != 0) {
    const std::string& text = values["timeout"].as<std::string>();
    const auto timeout = parse_duration(text);
    if (!timeout) {
      status = usage_error("invalid --timeout '" + text +
                           "': expected a duration such as 500ms, 2s or 1m (a plain number is "
                           "seconds)");
      return {};
    }
    map.timeout = *timeout;
  }
  if (values.count("grace") != 0) {
    const std::string& text = values["grace"].as<std::string>();
    const auto grace = parse_duration(text);
    if (!grace) {
      status = usage_error("invalid --grace '" + text +
                           "': expected a duration such as 500ms, 30s or 1m (a plain number is "
                           "seconds; 0 = kill running tasks at once)");
      return {};
    }
    map.grace = *grace;
  }
  if (values.count("handler") != 0) {
    map.handler = values["handler"].as<std::string>();
    if (map.handler.empty()) {
      status = usage_error("invalid --handler '': the handler name is empty");
      return {};
    }
  }
  const bool progress = values["progress"].as<bool>();
  const bool no_progress = values["no-progress"].as<bool>();
  if (progress && no_progress) {
    status = usage_error("--progress and --no-progress contradict each other");
    return {};
  }
  map.progress = progress || (!no_progress && ::isatty(STDERR_FILENO) == 1);
  map.unordered = values["unordered"].as<bool>();
  map.empty_on_failure = values["empty-on-failure"].as<bool>();
  map.stats = values["stats"].as<bool>();
  return map;
}

}  // namespace procpool::tool
