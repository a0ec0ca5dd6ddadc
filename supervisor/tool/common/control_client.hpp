#pragma once

// The client side of the daemon's control socket (docs/control.md), for `procpool status` and
// `procpool shutdown`: one request line, one reply line, every wait bounded.

#include <chrono>    // deadlines
#include <optional>  // no reply
#include <string>

#include <boost/json/object.hpp>
#include <boost/program_options/options_description.hpp>
#include <boost/program_options/variables_map.hpp>

#include "procpool/unique_fd.hpp"

namespace procpool::tool {

class ControlClient {
 public:
  // Connects to the daemon's socket; on failure, valid() is false and error() says why ("no
  // procpool daemon is running on PATH" for a missing socket or one nobody listens on).
  ControlClient(const std::string& socket_path, std::chrono::steady_clock::time_point deadline);

  bool valid() const noexcept { return static_cast<bool>(fd_); }
  const std::string& error() const noexcept { return error_; }

  // Sends `request` (one JSON object, without newline) and returns the reply line, or nothing
  // (error() says why).
  std::optional<std::string> call(const std::string& request);
  // Sends `request` and returns the reply if it says {"ok": true}; else nothing, with error()
  // saying why (the daemon's own "error" when it refused).
  std::optional<boost::json::object> request(const boost::json::object& request);
  // Waits until the daemon closes the connection (it does as it exits); false at the deadline.
  bool wait_closed();

 private:
  UniqueFd fd_;
  std::chrono::steady_clock::time_point deadline_;
  std::string socket_path_;
  std::string error_;
  std::string buffer_;
};

// The --socket option of every client command, and its value (default_socket_path() when not
// given).
void add_socket_option(boost::program_options::options_description& options);
std::string socket_of(const boost::program_options::variables_map& values);

}  // namespace procpool::tool
