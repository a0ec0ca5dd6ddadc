#include "tcp_probe.hpp"

#include <arpa/inet.h>   // htons, htonl
#include <netinet/in.h>  // sockaddr_in
#include <poll.h>        // poll
#include <sys/socket.h>  // socket, connect, getsockopt

#include <cerrno>  // errno

#include "socket_owner.hpp"

namespace procpool::detail {

bool TcpProbe::owner_listens() const noexcept {
  if (owner_pgid_ == 0) return true;
  try {
    return group_holds_socket(owner_pgid_, loopback_listeners(port_));
  } catch (...) {  // std::bad_alloc: not ready this time, the next probe looks again
    return false;
  }
}

bool TcpProbe::accepts() noexcept {
  if (pending_) {
    pollfd pfd{pending_.get(), POLLOUT, 0};
    if (::poll(&pfd, 1, 0) <= 0) return false;  // still connecting
    int error = 0;
    socklen_t len = sizeof error;
    const bool ok =
        ::getsockopt(pending_.get(), SOL_SOCKET, SO_ERROR, &error, &len) == 0 && error == 0;
    pending_.reset();
    return ok && owner_listens();
  }
  // The owner first: while another instance is the only one listening, no connection is made.
  if (!owner_listens()) return false;
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port_);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0) return true;
  if (errno == EINPROGRESS) pending_ = std::move(fd);
  return false;
}

}  // namespace procpool::detail
