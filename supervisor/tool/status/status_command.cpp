#include "status/status_command.hpp"

#include <unistd.h>  // STDOUT_FILENO, STDERR_FILENO

#include <chrono>  // the deadline
#include <cstdio>  // std::snprintf
#include <string>  // the table
#include <vector>  // rows

#include <boost/json.hpp>
#include <boost/program_options.hpp>

#include "common/control_client.hpp"
#include "common/error_stream.hpp"  // write_all
#include "common/exit_status.hpp"
#include "common/usage.hpp"

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

std::string number(double value, const char* format) {
  char text[64];
  std::snprintf(text, sizeof text, format, value);
  return text;
}

std::string mib(const json::value& bytes) {
  return number(static_cast<double>(bytes.to_number<std::uint64_t>()) / (1024.0 * 1024.0),
                "%.1f MiB");
}

// Columns padded to their widest cell.
std::string table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> width;
  for (const auto& row : rows) {
    width.resize(std::max(width.size(), row.size()), 0);
    for (std::size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
  }
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (std::size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(width[i] - row[i].size() + 2, ' ');
    }
    out += line + "\n";
  }
  return out;
}

std::string human(const json::object& reply) {
  std::vector<std::vector<std::string>> rows{
      {"NAME", "STATE", "PID", "UPTIME", "RESTARTS", "RSS", "CPU", "LAST EXIT"}};
  for (const json::value& entry : reply.at("programs").as_array()) {
    const json::object& p = entry.as_object();
    std::string state(p.at("state").as_string());
    if (const json::value* waiting = p.if_contains("waiting_for")) {
      std::string names;
      for (const json::value& name : waiting->as_array()) {
        if (!names.empty()) names.push_back(',');
        names.append(name.as_string());
      }
      state += " (for " + names + ")";
    }
    const auto pid = p.at("pid").to_number<std::int64_t>();
    rows.push_back(
        {std::string(p.at("name").as_string()), state, pid != 0 ? std::to_string(pid) : "-",
         number(p.at("uptime_s").to_number<double>(), "%.1f s"),
         std::to_string(p.at("restarts").to_number<std::uint64_t>()), mib(p.at("rss_bytes")),
         number(p.at("cpu_s").to_number<double>(), "%.2f s"),
         p.at("last_exit").is_null() ? "-" : std::string(p.at("last_exit").as_string())});
  }
  std::string out = rows.size() > 1 ? table(rows) : "";
  for (const json::value& entry : reply.at("pools").as_array()) {
    const json::object& pool = entry.as_object();
    const json::object& m = pool.at("metrics").as_object();
    auto count = [&](const char* key) {
      const json::value* v = m.if_contains(key);
      return v != nullptr ? std::to_string(v->to_number<std::uint64_t>()) : std::string("?");
    };
    const json::value* workers = m.if_contains("workers");
    out += "pool " + std::string(pool.at("name").as_string()) + ": " +
           (m.if_contains("state") ? std::string(m.at("state").as_string()) : "?") + ", " +
           std::to_string(workers != nullptr ? workers->as_array().size() : 0) + " workers, " +
           count("queued") + " queued, " + count("running") + " running, " + count("completed") +
           " completed, " + count("failed") + " failed\n";
  }
  return out;
}

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
             (*values)["json"].as<bool>() ? json::serialize(*reply) + "\n" : human(*reply));
  } catch (const std::exception&) {  // a field missing or of another type: not our daemon's
    write_to(STDERR_FILENO, std::string(kProgram) + ": malformed reply from the daemon\n");
    return kExitFailed;
  }
  return kExitOk;
}

}  // namespace procpool::tool
