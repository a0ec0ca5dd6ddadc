#pragma once
#include "procpool/detail/require_cxx20.hpp"

#include <atomic>   // std::atomic_ref
#include <cstddef>  // std::byte
#include <cstdint>  // std::uint64_t

namespace procpool::detail {

// The 8-byte record header word: payload size (low 32 bits) and tag (high 32 bits). Read and
// written as one 64-bit access through atomic_ref, so the reader fetches a header exactly once
// (no double fetch the peer could race, docs/design-rules.md §17) and never sees half an update.
// Relaxed is enough: the release/acquire pair on the ring positions orders the record's bytes.
inline std::uint64_t load_record_header(std::byte* at) noexcept {
  return std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(at))
      .load(std::memory_order_relaxed);
}

inline void store_record_header(std::byte* at, std::uint32_t size, std::uint32_t tag) noexcept {
  std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(at))
      .store(std::uint64_t{size} | (std::uint64_t{tag} << 32), std::memory_order_relaxed);
}

constexpr std::uint32_t record_size(std::uint64_t header) noexcept {
  return static_cast<std::uint32_t>(header);
}
constexpr std::uint32_t record_tag(std::uint64_t header) noexcept {
  return static_cast<std::uint32_t>(header >> 32);
}

}  // namespace procpool::detail
