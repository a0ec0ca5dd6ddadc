#include "procpool/segment_layout.hpp"

#include <limits>  // std::numeric_limits

#include "procpool/error.hpp"
#include "procpool/ring_data.hpp"
#include "procpool/worker_control.hpp"

namespace procpool {
namespace {

constexpr std::uint64_t kHeaderFootprint = 2 * kCacheLineSize;
constexpr std::uint64_t kMaxSegmentSize = std::uint64_t{1} << 40;  // 1 TiB: far above any real use

constexpr std::uint64_t align_up(std::uint64_t value) noexcept {
  return (value + kCacheLineSize - 1) & ~(kCacheLineSize - 1);
}

bool aligned(std::uint64_t value) noexcept { return value % kCacheLineSize == 0; }

// True if [offset, offset + size) lies inside [0, total) without overflow.
bool inside(std::uint64_t offset, std::uint64_t size, std::uint64_t total) noexcept {
  return offset <= total && size <= total - offset;
}

}  // namespace

SegmentHeader make_segment_layout(const SegmentConfig& config, std::uint64_t incarnation) {
  if (!is_valid_ring_capacity(config.to_worker_capacity) ||
      !is_valid_ring_capacity(config.to_supervisor_capacity)) {
    throw Error("segment: ring capacities must be powers of two between " +
                std::to_string(kMinRingCapacity) + " and " + std::to_string(kMaxRingCapacity) +
                " bytes");
  }
  if (config.heartbeat_interval_ms == 0) {
    throw Error("segment: heartbeat interval must be at least 1 ms");
  }
  SegmentHeader h{};
  h.magic = kSegmentMagic;
  h.layout_version = kSegmentLayoutVersion;
  h.header_size = sizeof(SegmentHeader);
  h.incarnation = incarnation;
  std::uint64_t cursor = kHeaderFootprint;
  h.control_offset = cursor;
  cursor += align_up(sizeof(WorkerControl));
  h.to_worker_ring_offset = cursor;
  cursor += sizeof(RingData);
  h.to_supervisor_ring_offset = cursor;
  cursor += sizeof(RingData);
  h.to_worker_bytes_offset = cursor;
  h.to_worker_capacity = config.to_worker_capacity;
  cursor += config.to_worker_capacity;
  h.to_supervisor_bytes_offset = cursor;
  h.to_supervisor_capacity = config.to_supervisor_capacity;
  cursor += config.to_supervisor_capacity;
  if (cursor > kMaxSegmentSize) throw Error("segment: larger than 1 TiB");
  h.total_size = cursor;
  h.heartbeat_interval_ms = config.heartbeat_interval_ms;
  return h;
}

std::string validate_segment_layout(const SegmentHeader& h, std::uint64_t mapped_size) {
  if (h.magic != kSegmentMagic) return "bad magic (not a procpool segment)";
  if (h.layout_version != kSegmentLayoutVersion) {
    return "layout version " + std::to_string(h.layout_version) + ", expected " +
           std::to_string(kSegmentLayoutVersion) + " (supervisor and worker built apart?)";
  }
  if (h.header_size != sizeof(SegmentHeader)) return "bad header size";
  if (h.total_size != mapped_size) {
    return "header says " + std::to_string(h.total_size) + " bytes, segment has " +
           std::to_string(mapped_size);
  }
  if (!is_valid_ring_capacity(h.to_worker_capacity) ||
      !is_valid_ring_capacity(h.to_supervisor_capacity)) {
    return "ring capacity not a valid power of two";
  }
  if (h.heartbeat_interval_ms == 0) return "zero heartbeat interval";
  if (h.padding != 0) return "padding not zero";
  // Each part must be aligned, inside the mapping, and after the previous one (no overlap).
  struct Part {
    std::uint64_t offset, size;
  };
  const Part parts[] = {
      {0, kHeaderFootprint},
      {h.control_offset, sizeof(WorkerControl)},
      {h.to_worker_ring_offset, sizeof(RingData)},
      {h.to_supervisor_ring_offset, sizeof(RingData)},
      {h.to_worker_bytes_offset, h.to_worker_capacity},
      {h.to_supervisor_bytes_offset, h.to_supervisor_capacity},
  };
  std::uint64_t end_of_previous = 0;
  for (const Part& part : parts) {
    if (!aligned(part.offset)) return "part not cache-line aligned";
    if (!inside(part.offset, part.size, mapped_size)) return "part outside the segment";
    if (part.offset < end_of_previous) return "parts overlap";
    end_of_previous = part.offset + part.size;
  }
  return {};
}

}  // namespace procpool
