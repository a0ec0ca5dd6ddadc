#pragma once

// ReadinessMode::TcpPort: "ready" is a successful connect() to 127.0.0.1:port. Nonblocking: a
// connect still in progress is looked at again at the next probe, never waited for.
//
// With several instances of a program on one port a connect cannot tell them apart (instance 1
// would be "ready" because instance 0 listens), so an owner process group can be named: then
// the port also needs a listening socket held by a process of that group (socket_owner.hpp).

#include "procpool/unique_fd.hpp"

namespace procpool::detail {

class TcpProbe {
 public:
  // `owner_pgid` 0: any listener will do.
  explicit TcpProbe(unsigned short port, int owner_pgid = 0) noexcept
      : port_(port), owner_pgid_(owner_pgid) {}
  // True once a connection was accepted (and, with an owner, the owner listens on the port);
  // the connection is closed at once.
  bool accepts() noexcept;

 private:
  bool owner_listens() const noexcept;

  unsigned short port_;
  int owner_pgid_;
  UniqueFd pending_;
};

}  // namespace procpool::detail
