#include "check/check_command.hpp"

#include <unistd.h>  // STDOUT_FILENO, STDERR_FILENO

#include <string>  // the report

#include <boost/program_options.hpp>

#include "common/error_stream.hpp"  // write_all
#include "common/exit_status.hpp"
#include "common/usage.hpp"
#include "config/daemon_config.hpp"

namespace procpool::tool {
namespace {

namespace po = boost::program_options;

constexpr std::string_view kProgram = "procpool check";

std::string help_text(const po::options_description& options) {
  return "Usage: procpool check [OPTIONS] CONFIG.toml\n"
         "\n"
         "Reads a procpool config file ([[program]] and [[pool]] sections, docs/config.md) and\n"
         "reports every problem as FILE:LINE:COL: MESSAGE, unknown keys with the closest known\n"
         "one. Starts nothing. On success, prints what the config holds and the programs' start\n"
         "order (each after those it depends on).\n"
         "\n" +
         options_text(options) +
         "\n"
         "Exit status: 0 the config is valid; 1 it has problems, or it cannot be read; 2 usage\n"
         "error.\n";
}

void write_text(int fd, const std::string& text) { (void)write_all(fd, text.data(), text.size()); }

}  // namespace

int run_check_command(std::span<char* const> args, const CommandContext& /*context*/) {
  po::options_description options("Options", kHelpWidth, kHelpDescriptionColumn);
  options.add_options()("help,h", "show this help and exit");
  int status = kExitOk;
  const std::optional<po::variables_map> values =
      parse_command_line(kProgram, args, options, "config", status);
  if (!values) return status;
  if (values->count("help") != 0) return print_help(help_text(options));
  const std::optional<std::string> config =
      one_positional(kProgram, *values, "config", "CONFIG.toml", true, status);
  if (!config) return status;
  const std::string& file = *config;

  const ConfigLoad load = load_config_file(file);
  if (!load.ok()) {
    std::string report = format_problems(file, load.problems);
    report += std::string(kProgram) + ": " + file + ": " + std::to_string(load.problems.size()) +
              (load.problems.size() == 1 ? " problem\n" : " problems\n");
    write_text(STDERR_FILENO, report);
    return kExitFailed;
  }
  unsigned instances = 0;
  for (const ProgramConfig& program : load.config.programs) instances += program.spec.numprocs;
  std::string report = file + ": ok: " + std::to_string(load.config.programs.size()) +
                       (load.config.programs.size() == 1 ? " program (" : " programs (") +
                       std::to_string(instances) +
                       (instances == 1 ? " instance), " : " instances), ") +
                       std::to_string(load.config.pools.size()) +
                       (load.config.pools.size() == 1 ? " pool\n" : " pools\n");
  if (!load.config.programs.empty()) {
    report += "start order:";
    for (const ProgramConfig* program : start_order(load.config))
      report += " " + program->spec.name;
    report += "\n";
  }
  write_text(STDOUT_FILENO, report);
  return kExitOk;
}

}  // namespace procpool::tool
