#pragma once

// The daemon's control socket (docs/control.md): where it lives, the lock that says a daemon
// owns it, and the listening socket itself.
//
// A daemon owns SOCKET while it holds an flock on SOCKET.lock. The kernel drops that lock when
// the daemon dies, however it dies, so a socket file left behind by a SIGKILLed daemon is told
// apart from a live one by the lock, not by whether the file exists: the next daemon takes the
// lock, removes the stale file and binds afresh; a second daemon while the first lives is
// refused.

#include <cstdint>   // Kind
#include <optional>  // the group
#include <string>    // paths

#include "procpool/error.hpp"
#include "procpool/unique_fd.hpp"

namespace procpool::tool {

class ControlEndpointError : public Error {
 public:
  enum class Kind : std::uint8_t {
    InUse,       // another daemon holds the lock (holder() is its pid, 0 if unknown)
    BadPath,     // too long for sockaddr_un, or its directory is not ours / not private
    SystemCall,  // a system call failed (code() is its errno)
  };
  ControlEndpointError(Kind kind, const std::string& message, int code = 0, int holder = 0)
      : Error(message), kind_(kind), code_(code), holder_(holder) {}
  Kind kind() const noexcept { return kind_; }
  int code() const noexcept { return code_; }
  int holder() const noexcept { return holder_; }

 private:
  Kind kind_;
  int code_;
  int holder_;
};

// $XDG_RUNTIME_DIR/procpool/procpool.sock; as root without it, /run/procpool/procpool.sock;
// otherwise /tmp/procpool-UID/procpool.sock.
std::string default_socket_path();

struct ControlEndpoint {
  std::string socket_path;
  std::string lock_path;
  UniqueFd lock;    // the flock, held while the daemon runs
  UniqueFd listen;  // AF_UNIX SOCK_STREAM, non-blocking, close-on-exec
};

// Creates the socket's directory if missing (0700; an existing one must be ours and not
// writable by others), takes the lock (writing our pid into the lock file), removes a stale
// socket and listens on a fresh one, 0600. With `group` (the config's [control] group): a
// directory it creates is 0710 and the group's, an existing one must let the group through
// (g+x), and the socket is 0660 and the group's. Throws ControlEndpointError.
ControlEndpoint open_control_endpoint(const std::string& socket_path,
                                      std::optional<unsigned> group = std::nullopt);

// Removes the socket and the lock file (the daemon's last step; the lock goes with the fd).
void close_control_endpoint(ControlEndpoint& endpoint) noexcept;

}  // namespace procpool::tool
