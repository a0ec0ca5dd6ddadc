#include "control/reload_command.hpp"

#include <unistd.h>  // STDOUT_FILENO, STDERR_FILENO

#include <chrono>  // the deadline
#include <cstdio>  // std::snprintf
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

constexpr std::string_view kProgram = "procpool reload";

// "changed: web, api" or "changed: -".
std::string names_line(const char* label, const boost::json::value* names) {
  std::string line(label);
  line.append(": ");
  std::string list;
  if (names != nullptr && names->is_array()) {
    for (const boost::json::value& name : names->get_array()) {
      if (!name.is_string()) continue;
      list.append(list.empty() ? "" : ", ").append(name.get_string());
    }
  }
  line.append(list.empty() ? "-" : list).push_back('\n');
  return line;
}

}  // namespace

int run_reload_command(std::span<char* const> args, const CommandContext& /*context*/) {
  po::options_description options("Options", kHelpWidth, kHelpDescriptionColumn);
  add_socket_option(options);
  options.add_options()  //
      ("timeout", po::value<Duration>()->value_name("DURATION"),
       "how long to wait for the daemon to be done (default 10m: each changed program's\n"
       "instances are replaced one by one, each waited for until ready)")  //
      ("help,h", "show this help and exit");
  int status = kExitOk;
  const std::optional<po::variables_map> values =
      parse_command_line(kProgram, args, options, "", status);
  if (!values) return status;
  if (values->count("help") != 0) {
    return print_help(
        "Usage: procpool reload [OPTIONS]\n"
        "\n"
        "Asks the daemon (procpool run) to re-read its config file and apply what changed, as\n"
        "SIGHUP does: new programs and pools are started, removed ones stopped, and each\n"
        "changed program is updated instance by instance, each new instance ready before its\n"
        "old one stops; one that fails is rolled back. A config with problems changes nothing.\n"
        "\n" +
        options_text(options) +
        "\n"
        "Exit status: 0 applied; 1 no daemon on the socket, the config has problems, or a\n"
        "program's update failed and was rolled back (the message says which and why); 2 usage\n"
        "error.\n");
  }
  const std::chrono::milliseconds timeout =
      values->count("timeout") != 0 ? (*values)["timeout"].as<Duration>().value
                                    : std::chrono::milliseconds(std::chrono::minutes(10));
  ControlClient client(socket_of(*values), std::chrono::steady_clock::now() + timeout);
  const auto fail = [](const std::string& message) {
    const std::string line = std::string(kProgram) + ": " + message + "\n";
    (void)write_all(STDERR_FILENO, line.data(), line.size());
    return kExitFailed;
  };
  // The raw reply: a failed update still says what else was done.
  const std::optional<std::string> line =
      client.valid() ? client.call(R"({"cmd":"reload"})") : std::nullopt;
  if (!line) return fail(client.error());
  boost::system::error_code code;
  const boost::json::value value = boost::json::parse(*line, code);
  const boost::json::object* reply = code ? nullptr : value.if_object();
  const boost::json::value* ok = reply != nullptr ? reply->if_contains("ok") : nullptr;
  if (ok == nullptr || !ok->is_bool()) return fail("malformed reply from the daemon");
  std::string text;
  if (reply->contains("added")) {
    text = names_line("added", reply->if_contains("added")) +
           names_line("changed", reply->if_contains("changed")) +
           names_line("removed", reply->if_contains("removed"));
  }
  if (const boost::json::value* seconds = reply->if_contains("seconds");
      seconds != nullptr && seconds->is_double()) {
    char took[64];
    std::snprintf(took, sizeof took, "done in %.3f s\n", seconds->get_double());
    text.append(took);
  }
  (void)write_all(STDOUT_FILENO, text.data(), text.size());
  if (!ok->as_bool()) {
    const boost::json::value* error = reply->if_contains("error");
    return fail(error != nullptr && error->is_string() ? std::string(error->get_string())
                                                       : "the daemon refused the reload");
  }
  return kExitOk;
}

}  // namespace procpool::tool
