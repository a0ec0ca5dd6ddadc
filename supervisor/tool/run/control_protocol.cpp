#include "run/control_protocol.hpp"

#include <boost/json.hpp>

namespace procpool::tool {

std::optional<ControlRequest> parse_request(std::string_view line, std::string& error) {
  boost::system::error_code code;
  const boost::json::value value = boost::json::parse(line, code);
  if (code) {
    error = "malformed request: " + code.message() + " (one JSON object per line)";
    return std::nullopt;
  }
  const boost::json::object* object = value.if_object();
  if (object == nullptr) {
    error = "malformed request: not a JSON object";
    return std::nullopt;
  }
  const boost::json::value* cmd = object->if_contains("cmd");
  if (cmd == nullptr || !cmd->is_string()) {
    error = "malformed request: no \"cmd\" string";
    return std::nullopt;
  }
  ControlRequest request;
  const std::string_view command(cmd->get_string());
  using Command = ControlRequest::Command;
  if (command == "status") {
    request.command = Command::Status;
  } else if (command == "start") {
    request.command = Command::Start;
  } else if (command == "stop") {
    request.command = Command::Stop;
  } else if (command == "restart") {
    request.command = Command::Restart;
  } else if (command == "reload") {
    request.command = Command::Reload;
  } else if (command == "shutdown") {
    request.command = Command::Shutdown;
  } else {
    error = "unknown command '" + std::string(command) +
            "' (status, start, stop, restart, reload, shutdown)";
    return std::nullopt;
  }
  const bool takes_name =
      request.command != Command::Shutdown && request.command != Command::Reload;
  for (const auto& [key, field] : *object) {
    if (key == "cmd") continue;
    if (key == "name" && takes_name && field.is_string()) {
      request.name = std::string(field.get_string());
      continue;
    }
    error = "unexpected field '" + std::string(key) + "' in a " + std::string(command) + " request";
    return std::nullopt;
  }
  if (takes_name && request.command != Command::Status && request.name.empty()) {
    error = "a " + std::string(command) + " request needs a \"name\"";
    return std::nullopt;
  }
  return request;
}

std::string error_reply(std::string_view message) {
  boost::json::object reply;
  reply["ok"] = false;
  reply["error"] = message;
  return boost::json::serialize(reply) + "\n";
}

}  // namespace procpool::tool
