#pragma once

// The daemon's side of systemd's notify protocol (Type=notify; sd_notify(3)), without
// libsystemd: datagrams to $NOTIFY_SOCKET. READY=1 once every program is ready, STATUS= with the
// counts, WATCHDOG=1 at half of $WATCHDOG_USEC, STOPPING=1 when it stops. The variables are
// removed from the daemon's environment when read, so neither its programs (they get the
// Supervisor's own notify socket) nor its pools' workers can notify the service manager.

#include <chrono>    // the watchdog
#include <optional>  // no watchdog
#include <string>

#include "procpool/unique_fd.hpp"

namespace procpool::tool {

class ServiceNotifier {
 public:
  // Reads and unsets NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID. Without NOTIFY_SOCKET (or
  // with one it cannot use: reported through error()), every call does nothing.
  ServiceNotifier();

  bool enabled() const noexcept { return static_cast<bool>(fd_); }
  const std::string& error() const noexcept { return error_; }

  // One datagram, e.g. "READY=1\nSTATUS=3 of 3 programs ready". False if it could not be sent.
  bool notify(const std::string& message);
  // How often WATCHDOG=1 is due (half of WATCHDOG_USEC), if the service manager asked for it.
  std::optional<std::chrono::milliseconds> watchdog_period() const noexcept { return period_; }
  // Sends WATCHDOG=1 if it is due; returns the time until the next one is (or nothing).
  std::optional<std::chrono::milliseconds> ping_if_due();

 private:
  UniqueFd fd_;
  std::string error_;
  std::optional<std::chrono::milliseconds> period_;
  std::chrono::steady_clock::time_point next_ping_{};
};

}  // namespace procpool::tool
