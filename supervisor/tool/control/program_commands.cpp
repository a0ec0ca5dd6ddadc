#include "control/program_commands.hpp"

#include <unistd.h>  // STDERR_FILENO

#include <chrono>  // the deadline
#include <string>
#include <vector>

#include <boost/json.hpp>
#include <boost/program_options.hpp>

#include "common/control_client.hpp"
#include "common/error_stream.hpp"  // write_all
#include "common/exit_status.hpp"
#include "common/option_values.hpp"  // Duration
#include "common/usage.hpp"

namespace procpool::tool {
namespace {

namespace po = boost::program_options;

void write_error(const std::string& program, const std::string& message) {
  const std::string line = program + ": " + message + "\n";
  (void)write_all(STDERR_FILENO, line.data(), line.size());
}

// `verb` is "start", "stop" or "restart": the request's "cmd" too.
int run_program_command(const std::string& verb, std::span<char* const> args) {
  const std::string program = "procpool " + verb;
  po::options_description options("Options", kHelpWidth, kHelpDescriptionColumn);
  add_socket_option(options);
  options.add_options()  //
      ("timeout", po::value<Duration>()->value_name("DURATION"),
       "how long to wait for the daemon to be done (default 120s)")  //
      ("help,h", "show this help and exit");
  int status = kExitOk;
  const std::optional<po::variables_map> values =
      parse_command_line(program, args, options, "name", status);
  if (!values) return status;
  if (values->count("help") != 0) {
    return print_help("Usage: " + program + " [OPTIONS] NAME\n\n" +
                      (verb == "start"  ? "Starts the daemon's stopped instances of program NAME."
                       : verb == "stop" ? "Stops every instance of program NAME and waits until "
                                          "they have exited;\nit stays stopped until started."
                                        : "Stops then starts every instance of program NAME.") +
                      "\n\n" + options_text(options) +
                      "\nExit status: 0 done; 1 no daemon on the socket, or it refused (an unknown "
                      "name,\ndependencies not ready); 2 usage error.\n");
  }
  const std::optional<std::string> name =
      one_positional(program, *values, "name", "NAME", true, status);
  if (!name) return status;
  const std::chrono::milliseconds timeout =
      values->count("timeout") != 0 ? (*values)["timeout"].as<Duration>().value
                                    : std::chrono::milliseconds(std::chrono::seconds(120));
  ControlClient client(socket_of(*values), std::chrono::steady_clock::now() + timeout);
  boost::json::object request;
  request["cmd"] = verb;
  request["name"] = *name;
  if (!client.valid() || !client.request(request)) {
    write_error(program, client.error());
    return kExitFailed;
  }
  return kExitOk;
}

}  // namespace

int run_start_command(std::span<char* const> args, const CommandContext&) {
  return run_program_command("start", args);
}
int run_stop_command(std::span<char* const> args, const CommandContext&) {
  return run_program_command("stop", args);
}
int run_restart_command(std::span<char* const> args, const CommandContext&) {
  return run_program_command("restart", args);
}

}  // namespace procpool::tool
