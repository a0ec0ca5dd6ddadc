#pragma once

// Whose is the socket listening on a port? For ReadinessMode::TcpPort with several instances on
// one port (docs/supervisor.md, Readiness): a connect alone cannot tell which instance accepted
// it, so an instance counts as listening only if a process of its own process group holds a
// listening socket there. Read from /proc: /proc/net/tcp and tcp6 give the listening sockets
// and their inodes, /proc/PID/fd of the group's processes the sockets they hold.

#include <vector>  // std::vector

namespace procpool::detail {

// Inodes of the TCP sockets in LISTEN state on `port` that a connect to 127.0.0.1:port can
// reach: bound to 127.0.0.1 or the wildcard, IPv4 or IPv6 (::, ::ffff:127.0.0.1,
// ::ffff:0.0.0.0). Empty if there is none or /proc cannot be read.
std::vector<unsigned long> loopback_listeners(unsigned short port);

// True if a process of process group `pgid` has one of `socket_inodes` open. Processes whose
// fds the caller may not read (another user's) are not seen.
bool group_holds_socket(int pgid, const std::vector<unsigned long>& socket_inodes);

}  // namespace procpool::detail
