// socket_owner.hpp with the test's own sockets: which listening sockets a connect to
// 127.0.0.1:PORT reaches, and whether a process group holds one.

#include <arpa/inet.h>   // htonl
#include <netinet/in.h>  // sockaddr_in, sockaddr_in6
#include <sys/socket.h>  // socket, bind, listen
#include <sys/stat.h>    // fstat
#include <unistd.h>      // getpgrp, close

#include <algorithm>  // std::find
#include <limits>     // std::numeric_limits

#include "procpool/unique_fd.hpp"
#include "socket_owner.hpp"
#include "supervisor_test_support.hpp"

namespace procpool::test {
namespace {

unsigned long inode_of(int fd) {
  struct stat st {};
  EXPECT_EQ(::fstat(fd, &st), 0);
  return static_cast<unsigned long>(st.st_ino);
}

unsigned short port_of(int fd) {
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  EXPECT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  return addr.ss_family == AF_INET ? ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port)
                                   : ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port);
}

// An IPv4 socket bound to `address`:`port` (0: any free port), listening if `listen`.
UniqueFd v4_socket(std::uint32_t address, unsigned short port, bool listening) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  EXPECT_TRUE(fd);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(address);
  EXPECT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  if (listening) {
    EXPECT_EQ(::listen(fd.get(), 4), 0);
  }
  return fd;
}

bool contains(const std::vector<unsigned long>& inodes, unsigned long inode) {
  return std::find(inodes.begin(), inodes.end(), inode) != inodes.end();
}

TEST(SupervisorSocketOwner, LoopbackAndWildcardListenersAreFoundAndOwned) {
  const UniqueFd loopback = v4_socket(INADDR_LOOPBACK, 0, true);
  const unsigned short port = port_of(loopback.get());
  const std::vector<unsigned long> found = detail::loopback_listeners(port);
  EXPECT_TRUE(contains(found, inode_of(loopback.get())));
  EXPECT_TRUE(detail::group_holds_socket(::getpgrp(), found));
  // No process group has this id (pids stay below pid_max, at most 2^22).
  EXPECT_FALSE(detail::group_holds_socket(std::numeric_limits<int>::max(), found));

  const UniqueFd wildcard = v4_socket(INADDR_ANY, 0, true);
  EXPECT_TRUE(
      contains(detail::loopback_listeners(port_of(wildcard.get())), inode_of(wildcard.get())));
}

TEST(SupervisorSocketOwner, IPv6WildcardListenerIsFound) {
  UniqueFd fd(::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) GTEST_SKIP() << "no IPv6 here";
  sockaddr_in6 addr{};
  addr.sin6_family = AF_INET6;
  addr.sin6_addr = in6addr_any;
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    GTEST_SKIP() << "cannot bind [::]";
  }
  ASSERT_EQ(::listen(fd.get(), 4), 0);
  EXPECT_TRUE(contains(detail::loopback_listeners(port_of(fd.get())), inode_of(fd.get())));
}

// A connect to 127.0.0.1 reaches neither a socket that does not listen nor one bound to
// another address.
TEST(SupervisorSocketOwner, UnreachableOrNotListeningSocketsAreNotFound) {
  const UniqueFd bound = v4_socket(INADDR_LOOPBACK, 0, false);
  EXPECT_TRUE(detail::loopback_listeners(port_of(bound.get())).empty());
  const UniqueFd other = v4_socket(INADDR_LOOPBACK + 1, 0, true);  // 127.0.0.2
  EXPECT_FALSE(contains(detail::loopback_listeners(port_of(other.get())), inode_of(other.get())));
}

}  // namespace
}  // namespace procpool::test
