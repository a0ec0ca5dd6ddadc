#pragma once
#include "procpool/detail/require_cxx20.hpp"

#include <cstddef>  // offsetof
#include <cstdint>  // std::uint32_t, std::uint64_t
#include <string>   // std::string (validation messages)

#include "procpool/cache_line.hpp"

namespace procpool {

inline constexpr std::uint64_t kSegmentMagic = 0x4C4F4F50'434F5250;  // "PROCPOOL" little-endian
inline constexpr std::uint32_t kSegmentLayoutVersion = 3;

// What a supervisor asks for when it creates a worker's segment.
struct SegmentConfig {
  std::uint64_t to_worker_capacity = 256 * 1024;      // ring bytes, power of two
  std::uint64_t to_supervisor_capacity = 256 * 1024;  // ring bytes, power of two
  std::uint32_t heartbeat_interval_ms = 100;
};

// Where everything is in a segment. The segment starts with this header, written once by the
// supervisor before the worker is spawned and never changed afterwards. The supervisor never
// reads it back (it keeps its own copy); the worker reads it once at attach, validates it against
// the size of the mapping, and uses only its validated copy.
//
//   [ header | WorkerControl | RingData to_worker | RingData to_supervisor |
//     to_worker bytes | to_supervisor bytes ]        every part cache-line aligned
struct SegmentHeader {
  std::uint64_t magic;
  std::uint32_t layout_version;
  std::uint32_t header_size;
  std::uint64_t total_size;   // bytes in the segment (the memfd's sealed size)
  std::uint64_t incarnation;  // which start of which worker slot this segment belongs to
  std::uint64_t control_offset;
  std::uint64_t to_worker_ring_offset;  // RingData: supervisor writes, worker reads
  std::uint64_t to_worker_bytes_offset;
  std::uint64_t to_worker_capacity;
  std::uint64_t to_supervisor_ring_offset;  // RingData: worker writes, supervisor reads
  std::uint64_t to_supervisor_bytes_offset;
  std::uint64_t to_supervisor_capacity;
  std::uint32_t heartbeat_interval_ms;
  std::uint32_t padding;  // zero; keeps the size a multiple of 8
};

static_assert(sizeof(SegmentHeader) == 96, "SegmentHeader is part of the segment layout");
static_assert(sizeof(SegmentHeader) <= 2 * kCacheLineSize, "header fits its two cache lines");
static_assert(offsetof(SegmentHeader, heartbeat_interval_ms) == 88,
              "SegmentHeader fields are at fixed offsets");

// Computes the header for `config`. Throws procpool::Error if the config is impossible
// (capacities not powers of two, a zero heartbeat interval).
SegmentHeader make_segment_layout(const SegmentConfig& config, std::uint64_t incarnation);

// Checks a header read from a mapping of `mapped_size` bytes: magic, version, every offset and
// size inside the mapping and aligned, parts not overlapping. Returns an empty string if valid,
// otherwise what is wrong.
std::string validate_segment_layout(const SegmentHeader& header, std::uint64_t mapped_size);

}  // namespace procpool
