#include "tcp_probe.hpp"

#include <arpa/inet.h>   // htons, htonl
#include <netinet/in.h>  // sockaddr_in
#include <poll.h>        // poll
#include <sys/socket.h>  // socket, connect, getsockopt

#include <cerrno>  // errno

namespace procpool::detail {

bool TcpProbe::accepts() noexcept {
  if (pending_) {
    pollfd pfd{pending_.get(), POLLOUT, 0};
    if (::poll(&pfd, 1, 0) <= 0) return false;  // still connecting
    int error = 0;
    socklen_t len = sizeof error;
    const bool ok =
        ::getsockopt(pending_.get(), SOL_SOCKET, SO_ERROR, &error, &len) == 0 && error == 0;
    pending_.reset();
    return ok;
  }
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
