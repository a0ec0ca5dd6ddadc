#pragma once
#include "procpool/detail/require_cxx20.hpp"

// What Segment and SharedRegion share: an owner-only, close-on-exec, size-sealed memfd, and its
// shared mapping. Errors throw procpool::Error naming `what` ("segment", "shared memory").

#include <cstddef>      // std::byte
#include <cstdint>      // std::uint64_t
#include <string_view>  // std::string_view

namespace procpool::detail {

// A new memfd of `size` bytes, mode 0600, MFD_CLOEXEC, sealed against shrinking, growing and
// further sealing (F_SEAL_SHRINK|F_SEAL_GROW|F_SEAL_SEAL): nobody holding the fd can change its
// size under another process's mapping.
int create_sealed_memfd(const char* name, std::uint64_t size, std::string_view what);

// True if `fd` carries all three of those seals.
bool has_size_seals(int fd) noexcept;

// mmap(PROT_READ|PROT_WRITE, MAP_SHARED) of the first `size` bytes.
std::byte* map_shared(int fd, std::uint64_t size, std::string_view what);

}  // namespace procpool::detail
