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
#include "run/control_endpoint.hpp"  // default_socket_path

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
  options.add_options()  //
      ("socket", po::value<std::string>()->value_name("PATH"),
       "the daemon's control socket (default: as procpool run's)")  //
      ("timeout", po::value<Duration>()->value_name("DURATION"),
       "how long to wait for the daemon to be done (default 120s)")  //
      ("help,h", "show this help and exit");
  po::options_description all;
  all.add(options).add_options()("name", po::value<std::vector<std::string>>());
  po::positional_options_description positional;
  positional.add("name", -1);
  po::variables_map values;
  try {
    po::store(po::command_line_parser(std::vector<std::string>(args.begin(), args.end()))
                  .options(all)
                  .positional(positional)
                  .style(kOptionStyle)
                  .run(),
              values);
    po::notify(values);
  } catch (const po::error& e) {
    return usage_error(program, e.what());
  }
  if (values.count("help") != 0) {
    return print_help("Usage: " + program + " [OPTIONS] NAME\n\n" +
                      (verb == "start"  ? "Starts the daemon's stopped instances of program NAME."
                       : verb == "stop" ? "Stops every instance of program NAME and waits until "
                                          "they have exited;\nit stays stopped until started."
                                        : "Stops then starts every instance of program NAME.") +
                      "\n\n" + options_text(options) +
                      "\nExit status: 0 done; 1 no daemon on the socket, or it refused (an unknown "
                      "name,\ndependencies not ready); 2 usage error.\n");
  }
  if (values.count("name") == 0) return usage_error(program, "missing NAME");
  const auto& names = values["name"].as<std::vector<std::string>>();
  if (names.size() > 1) return usage_error(program, "one NAME at a time");
  const std::string socket_path =
      values.count("socket") != 0 ? values["socket"].as<std::string>() : default_socket_path();
  const std::chrono::milliseconds timeout =
      values.count("timeout") != 0 ? values["timeout"].as<Duration>().value
                                   : std::chrono::milliseconds(std::chrono::seconds(120));
  ControlClient client(socket_path, std::chrono::steady_clock::now() + timeout);
  if (!client.valid()) {
    write_error(program, client.error());
    return kExitFailed;
  }
  boost::json::object request;
  request["cmd"] = verb;
  request["name"] = names.front();
  const std::optional<std::string> reply = client.call(boost::json::serialize(request));
  if (!reply) {
    write_error(program, client.error());
    return kExitFailed;
  }
  boost::system::error_code code;
  const boost::json::value parsed = boost::json::parse(*reply, code);
  const boost::json::object* object = code ? nullptr : parsed.if_object();
  const boost::json::value* ok = object != nullptr ? object->if_contains("ok") : nullptr;
  if (ok == nullptr || !ok->is_bool()) {
    write_error(program, "malformed reply from the daemon");
    return kExitFailed;
  }
  if (!ok->as_bool()) {
    const boost::json::value* error = object->if_contains("error");
    write_error(program, error != nullptr && error->is_string() ? std::string(error->as_string())
                                                                : "the daemon refused");
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
