#include "run/control_server.hpp"

#include <sys/socket.h>  // accept4, getsockopt, SO_PEERCRED
#include <unistd.h>      // read, getuid

#include <algorithm>  // std::find
#include <cerrno>     // errno
#include <chrono>     // the reply deadline
#include <vector>     // peer groups

#include "common/error_stream.hpp"  // write_all
#include "run/control_protocol.hpp"

namespace procpool::tool {
namespace {

// A client that does not take its reply within this long is dropped.
constexpr std::chrono::milliseconds kReplyDeadline{1000};
// Clients served at once; more wait in the listen backlog.
constexpr std::size_t kMaxClients = 64;

}  // namespace

ControlServer::ControlServer(int listen_fd, Handler handle, std::optional<unsigned> group)
    : listen_fd_(listen_fd), handle_(std::move(handle)), group_(group) {}

bool ControlServer::allowed(int fd) const {
  ucred peer{};
  socklen_t size = sizeof peer;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &size) != 0) return false;
  if (peer.uid == ::getuid()) return true;
  if (!group_) return false;
  if (peer.gid == static_cast<gid_t>(*group_)) return true;
  // Its supplementary groups, as they were at connect().
  std::vector<gid_t> groups(64);
  for (;;) {
    socklen_t bytes = static_cast<socklen_t>(groups.size() * sizeof(gid_t));
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &bytes) == 0) {
      groups.resize(bytes / sizeof(gid_t));
      break;
    }
    if (errno != ERANGE || bytes <= groups.size() * sizeof(gid_t)) return false;
    groups.resize(bytes / sizeof(gid_t));
  }
  return std::find(groups.begin(), groups.end(), static_cast<gid_t>(*group_)) != groups.end();
}

void ControlServer::add_poll_fds(std::vector<pollfd>& fds) const {
  fds.push_back({clients_.size() < kMaxClients ? listen_fd_ : -1, POLLIN, 0});
  // A client waiting for a deferred reply is not read meanwhile (only its hang-up is seen).
  for (const Client& client : clients_) {
    fds.push_back({client.fd.get(), static_cast<short>(client.waiting ? 0 : POLLIN), 0});
  }
}

void ControlServer::serve(const std::vector<pollfd>& fds, std::size_t first) {
  const bool listening = fds[first].revents != 0;
  // Clients in the order add_poll_fds listed them; dropped ones leave the list afterwards.
  std::vector<bool> keep(clients_.size(), true);
  for (std::size_t i = 0; i < clients_.size(); ++i) {
    const short revents = fds[first + 1 + i].revents;
    if (revents == 0) continue;
    // Gone while waiting: its reply, when it comes, finds no one (the work is done anyway).
    keep[i] = clients_[i].waiting ? (revents & (POLLHUP | POLLERR | POLLNVAL)) == 0
                                  : serve_client(clients_[i]);
  }
  std::size_t kept = 0;
  for (std::size_t i = 0; i < clients_.size(); ++i) {
    if (keep[i]) clients_[kept++] = std::move(clients_[i]);
  }
  clients_.resize(kept);
  if (listening) accept_clients();
}

void ControlServer::accept_clients() {
  while (clients_.size() < kMaxClients) {
    UniqueFd fd(::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!fd) return;  // EAGAIN: none left (or a transient error: the next poll retries)
    if (!allowed(fd.get())) {
      Client refused{std::move(fd), {}, 0, false};
      (void)reply(refused,
                  error_reply("permission denied: the control socket serves uid " +
                              std::to_string(::getuid()) +
                              (group_ ? " and group " + std::to_string(*group_) : "") + " only"));
      continue;
    }
    clients_.push_back(Client{std::move(fd), {}, next_id_++, false});
  }
}

bool ControlServer::serve_client(Client& client) {
  char chunk[4096];
  for (;;) {
    const ssize_t n = ::read(client.fd.get(), chunk, sizeof chunk);
    if (n == 0) return false;  // gone, maybe mid-request: nothing was done for it
    if (n < 0) return errno == EAGAIN || errno == EINTR;
    client.buffer.append(chunk, static_cast<std::size_t>(n));
    if (!handle_lines(client)) return false;
    if (client.waiting) return true;  // read again once answered
    if (client.buffer.size() > kMaxRequestLine) {
      (void)reply(client, error_reply("request line longer than " +
                                      std::to_string(kMaxRequestLine) + " bytes"));
      return false;
    }
  }
}

bool ControlServer::handle_lines(Client& client) {
  std::size_t newline;
  while (!client.waiting && (newline = client.buffer.find('\n')) != std::string::npos) {
    const std::string line = client.buffer.substr(0, newline);
    client.buffer.erase(0, newline + 1);
    const std::string answer = handle_(line, client.id);
    if (answer.empty()) {
      client.waiting = true;
    } else if (!reply(client, answer)) {
      return false;
    }
  }
  return true;
}

void ControlServer::deliver(std::uint64_t id, const std::string& text) {
  const auto it =
      std::find_if(clients_.begin(), clients_.end(), [id](const Client& c) { return c.id == id; });
  if (it == clients_.end()) return;
  it->waiting = false;
  if (!reply(*it, text) || !handle_lines(*it)) clients_.erase(it);
}

bool ControlServer::reply(Client& client, const std::string& text) {
  return write_all(client.fd.get(), text.data(), text.size(),
                   std::chrono::steady_clock::now() + kReplyDeadline);
}

}  // namespace procpool::tool
