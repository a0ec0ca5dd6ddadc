#include "shutdown/shutdown_command.hpp"

#include <unistd.h>  // STDERR_FILENO

#include <chrono>  // the deadline
#include <string>

#include <boost/program_options.hpp>

#include "common/control_client.hpp"
#include "common/error_stream.hpp"  // write_all
#include "common/exit_status.hpp"
#include "common/option_values.hpp"  // Duration
#include "common/usage.hpp"
#include "run/control_endpoint.hpp"  // default_socket_path

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
  options.add_options()  //
      ("socket", po::value<std::string>()->value_name("PATH"),
       "the daemon's control socket (default: as procpool run's)")  //
      ("timeout", po::value<Duration>()->value_name("DURATION"),
       "how long to wait for the daemon to stop (default 120s)")  //
      ("help,h", "show this help and exit");
  po::variables_map values;
  try {
    po::store(po::command_line_parser(std::vector<std::string>(args.begin(), args.end()))
                  .options(options)
                  .style(kOptionStyle)
                  .run(),
              values);
    po::notify(values);
  } catch (const po::error& e) {
    return usage_error(kProgram, e.what());
  }
  if (values.count("help") != 0) {
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
  const std::string socket_path =
      values.count("socket") != 0 ? values["socket"].as<std::string>() : default_socket_path();
  const std::chrono::milliseconds timeout =
      values.count("timeout") != 0 ? values["timeout"].as<Duration>().value
                                   : std::chrono::milliseconds(std::chrono::seconds(120));
  ControlClient client(socket_path, std::chrono::steady_clock::now() + timeout);
  if (!client.valid()) {
    fail(client.error());
    return kExitFailed;
  }
  const std::optional<std::string> reply = client.call("{\"cmd\":\"shutdown\"}");
  if (!reply) {
    fail(client.error());
    return kExitFailed;
  }
  if (reply->find("\"ok\":true") == std::string::npos) {
    fail("the daemon refused: " + *reply);
    return kExitFailed;
  }
  if (!client.wait_closed()) {
    fail("the daemon did not stop within the timeout");
    return kExitFailed;
  }
  return kExitOk;
}

}  // namespace procpool::tool
