// procpool: the command-line front end of the pool.
//
//   procpool COMMAND [OPTIONS] ...   (one folder per command: map/, ...)
//   procpool --help | --version

#include <fcntl.h>   // open, fcntl
#include <unistd.h>  // dup2, close

#include <algorithm>    // std::max, std::find_if
#include <cerrno>       // errno
#include <cstring>      // std::strcmp
#include <iterator>     // std::size
#include <span>         // std::span
#include <sstream>      // the generated help
#include <string>       // messages
#include <string_view>  // std::string_view

#include <boost/program_options.hpp>  // the options before the command

#include "check/check_command.hpp"
#include "common/command.hpp"
#include "common/exit_status.hpp"
#include "common/usage.hpp"
#include "control/program_commands.hpp"
#include "control/reload_command.hpp"
#include "logs/logs_command.hpp"
#include "map/map_command.hpp"
#include "run/run_command.hpp"
#include "shutdown/shutdown_command.hpp"
#include "status/status_command.hpp"
#include "supervise/supervise_command.hpp"
#include "top/top_command.hpp"

namespace {

namespace po = boost::program_options;
using procpool::tool::Command;

// Every command: one entry here (its summary is its line in `procpool --help`), the include of
// its header above, and its folder next to map/ (supervisor/tool/CMakeLists.txt takes it in).
constexpr Command kCommands[] = {
    {"map", "run a worker handler on every line of standard input, results to standard output",
     procpool::tool::run_map_command},
    {"supervise", "keep one program running: restarts with backoff, readiness, watchdog, logs",
     procpool::tool::run_supervise_command},
    {"check", "validate a config file ([[program]] and [[pool]] sections); starts nothing",
     procpool::tool::run_check_command},
    {"run", "the daemon: run a config file's programs and pools until shutdown",
     procpool::tool::run_run_command},
    {"status", "what the daemon runs: per instance and per pool",
     procpool::tool::run_status_command},
    {"top", "the daemon's status as a live table, refreshed every second",
     procpool::tool::run_top_command},
    {"start", "start a program of the daemon's", procpool::tool::run_start_command},
    {"stop", "stop a program of the daemon's (it stays stopped)", procpool::tool::run_stop_command},
    {"restart", "stop then start a program of the daemon's", procpool::tool::run_restart_command},
    {"reload", "re-read the daemon's config; apply what changed (rolling, readiness-gated)",
     procpool::tool::run_reload_command},
    {"logs", "a daemon program's log file: its last lines, then (-f) what follows",
     procpool::tool::run_logs_command},
    {"shutdown", "stop the daemon and everything it runs", procpool::tool::run_shutdown_command},
};

constexpr std::string_view kProgram = "procpool";

po::options_description global_options() {
  po::options_description options("Options", procpool::tool::kHelpWidth,
                                  procpool::tool::kHelpDescriptionColumn);
  options.add_options()                      //
      ("help,h", "show this help and exit")  //
      ("version", "show the version and exit");
  return options;
}

std::string help_text() {
  std::ostringstream text;
  text << "Usage: procpool COMMAND [OPTIONS]\n"
          "       procpool --help | --version\n\n"
          "Runs tasks in a pool of worker processes, and keeps programs running under "
          "supervision.\n\n"
          "Commands:\n";
  std::size_t width = 0;
  for (const Command& command : kCommands) width = std::max(width, command.name.size());
  for (const Command& command : kCommands) {
    text << "  " << command.name << std::string(width - command.name.size() + 4, ' ')
         << command.summary << '\n';
  }
  text << '\n'
       << procpool::tool::options_text(global_options())
       << "\nRun 'procpool COMMAND --help' for a command's options.\n";
  return std::move(text).str();
}

// A closed fd 0, 1 or 2 would be taken by the next open() (a pool's eventfd read as input, say):
// point any closed one at /dev/null first. Returns which were closed (bit N for fd N).
unsigned ensure_standard_fds() {
  unsigned closed = 0;
  for (int fd = 0; fd < 3; ++fd) {
    if (::fcntl(fd, F_GETFD) >= 0 || errno != EBADF) continue;
    closed |= 1U << fd;
    const int null_fd = ::open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY);
    if (null_fd >= 0 && null_fd != fd) {
      ::dup2(null_fd, fd);
      ::close(null_fd);
    }
  }
  return closed;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace procpool::tool;
  const unsigned closed_fds = ensure_standard_fds();
  const std::span<char* const> args(argv + 1, argc > 0 ? static_cast<std::size_t>(argc - 1) : 0);

  // Only the options before the command are ours; the command parses the rest, so that
  // `procpool map --help` is map's help. The command is the first argument that is no option
  // (or the one after "--").
  std::size_t command_end = args.size();
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (std::strcmp(args[i], "--") == 0) {
      command_end = std::min(i + 2, args.size());
      break;
    }
    if (args[i][0] != '-') {
      command_end = i + 1;
      break;
    }
  }
  po::positional_options_description positional;
  positional.add("command", 1);
  po::options_description options = global_options();
  options.add_options()("command", po::value<std::string>());
  po::variables_map values;
  try {
    po::store(
        po::command_line_parser(std::vector<std::string>(args.begin(), args.begin() + command_end))
            .options(options)
            .positional(positional)
            .style(kOptionStyle)
            .run(),
        values);
    po::notify(values);
  } catch (const po::error& e) {
    return usage_error(kProgram, e.what());
  }
  if (values.count("help") != 0) return print_help(help_text());
  if (values.count("version") != 0) return print_help("procpool " PROCPOOL_VERSION "\n");
  if (values.count("command") == 0) return usage_error(kProgram, "missing command");

  const std::string& name = values["command"].as<std::string>();
  const auto command = std::find_if(std::begin(kCommands), std::end(kCommands),
                                    [&](const Command& c) { return c.name == name; });
  if (command == std::end(kCommands))
    return usage_error(kProgram, "unknown command '" + name + "'");
  const CommandContext context{.stdout_was_closed = (closed_fds & (1U << 1)) != 0};
  return command->run(args.subspan(command_end), context);
}
