#pragma once

#include <sys/epoll.h>    // epoll
#include <sys/eventfd.h>  // eventfd

#include <cerrno>   // errno
#include <cstdint>  // tags

#include "procpool/error.hpp"
#include "procpool/unique_fd.hpp"

namespace procpool::detail {

// The supervisor thread's epoll set: each registered fd's tag is its kind (bits 40..47) and, for
// a worker's fds, the slot index (the low 32 bits), so one epoll_wait serves every worker.
constexpr std::uint64_t kEpollDoorbell = 1ULL << 40;
constexpr std::uint64_t kEpollKick = 2ULL << 40;
constexpr std::uint64_t kEpollPidfd = 3ULL << 40;
constexpr std::uint64_t kEpollStderr = 4ULL << 40;
constexpr std::uint64_t kEpollStdout = 5ULL << 40;
constexpr std::uint64_t kEpollKindMask = 0xFFULL << 40;

inline UniqueFd make_eventfd() {
  UniqueFd fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!fd) throw_errno(errno, "procpool::Pool: eventfd");
  return fd;
}

inline void epoll_add(int epoll_fd, int fd, std::uint64_t tag) {
  epoll_event event{};
  event.events = EPOLLIN;
  event.data.u64 = tag;
  if (::epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &event) != 0) {
    throw_errno(errno, "procpool::Pool: epoll_ctl");
  }
}

inline void drain_eventfd(int fd) {
  eventfd_t value;
  while (::eventfd_read(fd, &value) == 0) {
  }
}

}  // namespace procpool::detail
