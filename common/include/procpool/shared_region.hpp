#pragma once
#include "procpool/detail/require_cxx20.hpp"

#include <cstddef>  // std::byte
#include <cstdint>  // std::uint64_t
#include <span>     // std::span

namespace procpool {

// Memory every process of a pool maps at once: the supervisor and all its workers, across
// restarts (the SharedArrayBuffer of processes). The pool creates it once (PoolOptions::
// shared_memory_size); each worker inherits the fd (PROCPOOL_SHARED_FD) and maps it.
//
// Like the segment it is a sealed memfd: no name in /dev/shm, freed by the kernel with the last
// fd or mapping (a crashed supervisor leaves nothing behind), mode 0600, close-on-exec, and its
// size cannot change (F_SEAL_SHRINK|F_SEAL_GROW|F_SEAL_SEAL), so no worker can make another
// process SIGBUS.
//
// Who writes what: anyone, at any time. The runtime never reads it; the application's
// supervisor side must treat what workers wrote there as untrusted (bounds-check offsets read
// from it, read each value once) and must not share a lock there whose holder can die. Use
// std::atomic_ref / lock-free atomics for coordination.
class SharedRegion {
 public:
  // A zero-filled region of `size` bytes (> 0). Throws procpool::Error.
  static SharedRegion create(std::uint64_t size);
  // Maps the region behind an inherited fd; takes ownership of `fd`. Throws procpool::Error if
  // it is not a sealed memfd.
  static SharedRegion attach(int fd);

  SharedRegion() noexcept = default;
  SharedRegion(SharedRegion&& other) noexcept;
  SharedRegion& operator=(SharedRegion&& other) noexcept;
  SharedRegion(const SharedRegion&) = delete;
  SharedRegion& operator=(const SharedRegion&) = delete;
  ~SharedRegion();

  int fd() const noexcept { return fd_; }
  std::span<std::byte> bytes() const noexcept { return {base_, size_}; }

 private:
  SharedRegion(int fd, std::byte* base, std::uint64_t size) noexcept
      : fd_(fd), base_(base), size_(size) {}
  void reset() noexcept;

  int fd_ = -1;
  std::byte* base_ = nullptr;
  std::uint64_t size_ = 0;
};

}  // namespace procpool
