#pragma once

// The daemon's side of the control socket: accepting clients of our uid or of the config's
// [control] group (SO_PEERCRED, SO_PEERGROUPS), reading
// their request lines (bounded, untrusted), and writing replies with a deadline, so that a
// client that stops reading or goes away mid-request costs nothing but its own connection.

#include <poll.h>  // pollfd

#include <cstdint>     // client ids
#include <functional>  // the handler
#include <optional>    // the group
#include <string>
#include <vector>

#include "procpool/unique_fd.hpp"

namespace procpool::tool {

class ControlServer {
 public:
  // `handle` turns one request line of client `id` into its reply (a JSON object and a
  // newline), or returns "" to answer later through deliver(): the client's next lines wait
  // until then. `group`: peers in it (primary or supplementary, SO_PEERGROUPS) are served too.
  using Handler = std::function<std::string(const std::string& line, std::uint64_t id)>;
  ControlServer(int listen_fd, Handler handle, std::optional<unsigned> group = std::nullopt);

  // The deferred reply to client `id` (nothing if it went away meanwhile); then its next lines.
  void deliver(std::uint64_t id, const std::string& reply);

  // The fds to poll (the listening socket, then each client), appended to `fds`.
  void add_poll_fds(std::vector<pollfd>& fds) const;
  // After poll: accepts new clients and serves the readable ones. `fds` from add_poll_fds,
  // starting at `first`.
  void serve(const std::vector<pollfd>& fds, std::size_t first);

 private:
  struct Client {
    UniqueFd fd;
    std::string buffer;  // bytes of a request line not complete yet
    std::uint64_t id = 0;
    bool waiting = false;  // for a deferred reply
  };
  void accept_clients();
  // False once the client is done (closed, or sent too much).
  bool serve_client(Client& client);
  // The complete lines in its buffer, until one is deferred. False once the client is done.
  bool handle_lines(Client& client);
  bool reply(Client& client, const std::string& text);

  bool allowed(int fd) const;

  int listen_fd_;
  Handler handle_;
  std::uint64_t next_id_ = 1;
  std::optional<unsigned> group_;
  std::vector<Client> clients_;
};

}  // namespace procpool::tool
