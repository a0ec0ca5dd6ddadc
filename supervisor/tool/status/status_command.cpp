#include "status/status_command.hpp"

#include <unistd.h>  // STDOUT_FILENO, STDERR_FILENO

#include <chrono>  // the deadline
#include <string>  // the table

#include <boost/json.hpp>
#include <boost/program_options.hpp>

#include "common/control_client.hpp"
#include "common/error_stream.hpp"  // write_all
#include "common/exit_status.hpp"
#include "common/usage.hpp"
#include "status/status_table.hpp"

namespace procpool::tool {
namespace {

namespace po = boost::program_options;
namespace json = boost::json;

constexpr std::string_view kProgram = "procpool status";
constexpr std::chrono::seconds kReplyBound{10};

std::string help_text(const po::options_description& options) {
  return "Usage: procpool status [OPTIONS] [NAME]\n"
         "\n"
         "Asks the daemon (procpool run) what it runs: per program instance its state, pid,\n"
         "uptime, restarts, last exit, memory and CPU; per pool its workers and tasks. NAME: one\n"
         "program or pool.\n"
         "\n" +
         options_text(options) +
         "\n"
         "Exit status: 0 answered; 1 no daemon on the socket, or it refused the request; 2 usage\n"
         "error.\n";
}

void write_to(int fd, const std::string& text) { (void)write_all(fd, text.data(), text.size()); }

}  // namespace

int run_status_command(std::span<char* const> args, const CommandContext& /*context*/) {
  po::options_description options("Options", kHelpWidth, kHelpDescriptionColumn);
  add_socket_option(options);
  options.add_options()                                                        //
      ("json", po::bool_switch(), "print the daemon's reply as it is (JSON)")  //
      ("help,h", "show this help and exit");
  int status = kExitOk;
  const std::optional<po::variables_map> values =
      parse_command_line(kProgram, args, options, "name", status);
  if (!values) return status;
  if (values->count("help") != 0) return print_help(help_text(options));
  const std::optional<std::string> name =
      one_positional(kProgram, *values, "name", "NAME", false, status);
  if (!name) return status;
  ControlClient client(socket_of(*values), std::chrono::steady_clock::now() + kReplyBound);
  json::object request;
  request["cmd"] = "status";
  if (!name->empty()) request["name"] = *name;
  const std::optional<json::object> reply = client.valid() ? client.request(request) : std::nullopt;
  if (!reply) {
    write_to(STDERR_FILENO, std::string(kProgram) + ": " + client.error() + "\n");
    return kExitFailed;
  }
  try {
    write_to(STDOUT_FILENO,
             (*values)["json"].as<bool>() ? json::serialize(*reply) + "\n" : status_table(*reply));
  } catch (const std::exception&) {  // a field missing or of another type: not our daemon's
    write_to(STDERR_FILENO, std::string(kProgram) + ": malformed reply from the daemon\n");
    return kExitFailed;
  }
  return kExitOk;
}

}  // namespace procpool::tool
