#pragma once
#include "procpool/detail/require_cxx20.hpp"

#include <atomic>   // std::atomic
#include <cstddef>  // std::size_t, offsetof
#include <cstdint>  // std::uint64_t

#include "procpool/cache_line.hpp"
#include "procpool/event_count.hpp"

namespace procpool {

// The shared-memory half of one single-producer/single-consumer ring of variable-length records.
// The record bytes live elsewhere in the segment (a power-of-two span the views are given); this
// struct holds only the positions and the two wake-up eventcounts. Each process wraps it in its
// own view: RingWriter in the producer, RingReader in the consumer.
//
// Positions are 64-bit byte offsets that only grow (they never wrap in practice: 2^64 bytes at
// 100 GB/s is 5 years). Both are multiples of kRecordAlignment. The byte at position p lives at
// bytes[p & (capacity - 1)].
//
// Invariants a correct peer keeps, and each view re-checks on every load from the other side:
//   read_pos <= write_pos <= read_pos + capacity, both non-decreasing, both 8-aligned.
//
// A producer killed at any instruction loses at most its unpublished records: every record is
// written completely before the release store of write_pos that makes it visible.
struct RingData {
  // Written by the producer only (release, once per published batch); read by the consumer.
  alignas(kCacheLineSize) std::atomic<std::uint64_t> write_pos{0};
  // Written by the consumer only (release, once per released batch); read by the producer.
  alignas(kCacheLineSize) std::atomic<std::uint64_t> read_pos{0};
  // The consumer sleeps here when the ring is empty; the producer notifies after publishing.
  alignas(kCacheLineSize) EventCount readable;
  // The producer sleeps here when the ring is full; the consumer notifies after releasing.
  alignas(kCacheLineSize) EventCount writable;
};

static_assert(std::atomic<std::uint64_t>::is_always_lock_free,
              "shared memory may only hold lock-free atomics: a lock would die with its holder");
static_assert(sizeof(RingData) == 4 * kCacheLineSize, "RingData is part of the segment layout");
static_assert(offsetof(RingData, read_pos) == kCacheLineSize,
              "producer- and consumer-written positions must not share a cache line");

// Each record starts with one 8-byte header word: payload size in the low 32 bits, a tag in the
// high 32 bits. Records start at 8-aligned positions and are padded to 8 bytes.
inline constexpr std::uint64_t kRecordHeaderSize = 8;
inline constexpr std::uint64_t kRecordAlignment = 8;
// A data record. The tag doubles as a cheap check that the reader is looking at a header.
inline constexpr std::uint32_t kRecordTagData = 0x52'50'50'44;  // "DPPR"
// Fills the contiguous tail of the ring when the next record would not fit before the end, so
// that no record is ever split across the wrap. Its size field covers the rest of the ring.
inline constexpr std::uint32_t kRecordTagPadding = 0x50'50'50'44;  // "DPPP"

inline constexpr std::uint64_t kMinRingCapacity = 64;
inline constexpr std::uint64_t kMaxRingCapacity = std::uint64_t{1} << 31;

// Bytes a record with `payload` bytes occupies in the ring.
constexpr std::uint64_t ring_record_footprint(std::uint64_t payload) noexcept {
  return (kRecordHeaderSize + payload + kRecordAlignment - 1) & ~(kRecordAlignment - 1);
}

// The largest payload one record may carry in a ring of `capacity` bytes. Half the ring, so that
// the padding before a record plus the record itself always fit in an empty ring.
constexpr std::uint32_t ring_max_payload(std::uint64_t capacity) noexcept {
  return static_cast<std::uint32_t>(capacity / 2 - kRecordHeaderSize);
}

constexpr bool is_valid_ring_capacity(std::uint64_t capacity) noexcept {
  return capacity >= kMinRingCapacity && capacity <= kMaxRingCapacity &&
         (capacity & (capacity - 1)) == 0;
}

}  // namespace procpool
