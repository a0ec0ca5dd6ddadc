#pragma once
#include "procpool/detail/require_cxx20.hpp"

// The one owner of a file descriptor in procpool: closes it exactly once, unless released.
//
// Move-only, so an fd has one owner at a time and an early return or a throw cannot leak it
// (a leaked fd would reach every later child whose launcher keeps it, and would keep a worker's
// pipe or a pidfd alive). close() errors are ignored on purpose: after close() returns the fd is
// gone whatever it says (Linux never retries a close), so there is nothing to do with them.

#include <unistd.h>  // close

#include <utility>  // std::exchange

namespace procpool {

class UniqueFd {
 public:
  UniqueFd() noexcept = default;
  explicit UniqueFd(int fd) noexcept : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) reset(std::exchange(other.fd_, -1));
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  int get() const noexcept { return fd_; }
  bool valid() const noexcept { return fd_ >= 0; }
  explicit operator bool() const noexcept { return valid(); }
  // Gives up ownership without closing.
  [[nodiscard]] int release() noexcept { return std::exchange(fd_, -1); }
  // Closes the current fd (if any) and owns `fd` instead.
  void reset(int fd = -1) noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

}  // namespace procpool
