#pragma once

// The daemon's side of the control socket: accepting clients of our uid or of the config's
// [control] group (SO_PEERCRED, SO_PEERGROUPS), reading
// their request lines (bounded, untrusted), and writing replies with a deadline, so that a
// client that stops reading or goes away mid-request costs nothing but its own connection.

#include <poll.h>  // pollfd

#include <functional>  // the handler
#include <optional>    // the group
#include <string>
#include <vector>

#include "procpool/unique_fd.hpp"

namespace procpool::tool {

class ControlServer {
 public:
  // `handle` turns one request line into its reply (a JSON object and a newline).
  // `group`: peers in it (primary or supplementary, SO_PEERGROUPS) are served too.
  ControlServer(int listen_fd, std::function<std::string(const std::string&)> handle,
                std::optional<unsigned> group = std::nullopt);

  // The fds to poll (the listening socket, then each client), appended to `fds`.
  void add_poll_fds(std::vector<pollfd>& fds) const;
  // After poll: accepts new clients and serves the readable ones. `fds` from add_poll_fds,
  // starting at `first`.
  void serve(const std::vector<pollfd>& fds, std::size_t first);

 private:
  struct Client {
    UniqueFd fd;
    std::string buffer;  // bytes of a request line not complete yet
  };
  void accept_clients();
  // False once the client is done (closed, or sent too much).
  bool serve_client(Client& client);
  bool reply(Client& client, const std::string& text);

  bool allowed(int fd) const;

  int listen_fd_;
  std::function<std::string(const std::string&)> handle_;
  std::optional<unsigned> group_;
  std::vector<Client> clients_;
};

}  // namespace procpool::tool
