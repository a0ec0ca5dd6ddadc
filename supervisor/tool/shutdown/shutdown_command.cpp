#include "shutdown/shutdown_command.hpp"

#include <unistd.h>  // STDERR_FILENO

#include <chrono>  // the deadline
#include <string>

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

constexpr std::string_view kProgram = "procpool shutdown";

void fail(const std::string& message) {
  const std::string line = std::string(kProgram) + ": " + message + "\n";
  (void)write_all(STDERR_FILENO, line.data(), line.size());
}

}  // namespace

int run_shutdown_command(std::span<char* const> args, const CommandContext& /*context*/) {
  po::options_description options("Options", kHelpWidth, kHelpDescriptionColumn);
  add_socket_option(options);
  options.add_options()  //
      ("timeout", po::value<Duration>()->value_name("DURATION"),
       "how long to wait for the daemon to stop (default 120s)")  //
      ("help,h", "show this help and exit");
  int status = kExitOk;
  const std::optional<po::variables_map> values =
      parse_command_line(kProgram, args, options, "", status);
  if (!values) return status;
  if (values->count("help") != 0) {
    return print_help(
        "Usage: procpool shutdown [OPTIONS]\n"
        "\n"
        "Asks the daemon (procpool run) to stop its programs in reverse dependency order and\n"
        "drain its pools, then waits until it has exited.\n"
        "\n" +
        options_text(options) +
        "\n"
        "Exit status: 0 the daemon stopped; 1 no daemon on the socket, or it did not stop in\n"
        "time; 2 usage error.\n");
  }
  const std::chrono::milliseconds timeout =
      values->count("timeout") != 0 ? (*values)["timeout"].as<Duration>().value
                                    : std::chrono::milliseconds(std::chrono::seconds(120));
  ControlClient client(socket_of(*values), std::chrono::steady_clock::now() + timeout);
  boost::json::object request;
  request["cmd"] = "shutdown";
  if (!client.valid() || !client.request(request)) {
    fail(client.error());
    return kExitFailed;
  }
  if (!client.wait_closed()) {
    fail("the daemon did not stop within the timeout");
    return kExitFailed;
  }
  return kExitOk;
}

}  // namespace procpool::tool
