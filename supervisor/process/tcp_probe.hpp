#pragma once

// ReadinessMode::TcpPort: "ready" is a successful connect() to 127.0.0.1:port. Nonblocking: a
// connect still in progress is looked at again at the next probe, never waited for.

#include "procpool/unique_fd.hpp"

namespace procpool::detail {

class TcpProbe {
 public:
  explicit TcpProbe(unsigned short port) noexcept : port_(port) {}
  // True once a connection was accepted; the connection is closed at once.
  bool accepts() noexcept;

 private:
  unsigned short port_;
  UniqueFd pending_;
};

}  // namespace procpool::detail
