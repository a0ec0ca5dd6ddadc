#include "run/service_notifier.hpp"

#include <sys/socket.h>  // socket, sendto
#include <sys/un.h>      // sockaddr_un
#include <unistd.h>      // getpid

#include <cerrno>   // errno
#include <cstdlib>  // std::getenv, unsetenv
#include <cstring>  // std::memcpy

#include "common/text_format.hpp"  // errno_text

namespace procpool::tool {

ServiceNotifier::ServiceNotifier() {
  const char* socket_env = std::getenv("NOTIFY_SOCKET");
  const std::string path = socket_env != nullptr ? socket_env : "";
  const char* usec_env = std::getenv("WATCHDOG_USEC");
  const char* pid_env = std::getenv("WATCHDOG_PID");
  const std::string usec = usec_env != nullptr ? usec_env : "";
  const std::string watchdog_pid = pid_env != nullptr ? pid_env : "";
  ::unsetenv("NOTIFY_SOCKET");
  ::unsetenv("WATCHDOG_USEC");
  ::unsetenv("WATCHDOG_PID");
  if (path.empty()) return;
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  // "@name" is Linux's abstract namespace; anything else must be an absolute path.
  if ((path[0] != '/' && path[0] != '@') || path.size() >= sizeof address.sun_path) {
    error_ = "NOTIFY_SOCKET '" + path + "' is neither an absolute path nor @abstract";
    return;
  }
  std::memcpy(address.sun_path, path.data(), path.size());
  if (path[0] == '@') address.sun_path[0] = '\0';
  UniqueFd fd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd) {
    error_ = "notify socket: " + errno_text(errno);
    return;
  }
  const auto length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() +
                                             (path[0] == '@' ? 0 : 1));
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), length) != 0) {
    error_ = "NOTIFY_SOCKET " + path + ": " + errno_text(errno);
    return;
  }
  fd_ = std::move(fd);
  // WATCHDOG_PID, when set, names the process the watchdog is for: not us, then not ours.
  const bool ours = watchdog_pid.empty() || watchdog_pid == std::to_string(::getpid());
  char* end = nullptr;
  const unsigned long long value = std::strtoull(usec.c_str(), &end, 10);
  if (ours && !usec.empty() && end != nullptr && *end == '\0' && value >= 2000) {
    period_ = std::chrono::milliseconds(value / 2000);
  }
}

bool ServiceNotifier::notify(const std::string& message) {
  if (!fd_) return false;
  return ::send(fd_.get(), message.data(), message.size(), MSG_NOSIGNAL) ==
         static_cast<ssize_t>(message.size());
}

std::optional<std::chrono::milliseconds> ServiceNotifier::ping_if_due() {
  if (!fd_ || !period_) return std::nullopt;
  const auto now = std::chrono::steady_clock::now();
  if (now >= next_ping_) {
    (void)notify("WATCHDOG=1");
    next_ping_ = now + *period_;
  }
  return std::chrono::ceil<std::chrono::milliseconds>(next_ping_ - now);
}

}  // namespace procpool::tool
