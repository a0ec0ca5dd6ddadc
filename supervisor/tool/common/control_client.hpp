#pragma once

// The client side of the daemon's control socket (docs/control.md), for `procpool status` and
// `procpool shutdown`: one request line, one reply line, every wait bounded.

#include <chrono>    // deadlines
#include <optional>  // no reply
#include <string>

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
  // Waits until the daemon closes the connection (it does as it exits); false at the deadline.
  bool wait_closed();

 private:
  UniqueFd fd_;
  std::chrono::steady_clock::time_point deadline_;
  std::string socket_path_;
  std::string error_;
  std::string buffer_;
};

}  // namespace procpool::tool
