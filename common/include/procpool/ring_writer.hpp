#pragma once
#include "procpool/detail/require_cxx20.hpp"

#include <cstddef>  // std::byte
#include <cstdint>  // std::uint32_t, std::uint64_t
#include <cstring>  // std::memcpy
#include <span>     // std::span

#include "procpool/detail/record_header.hpp"
#include "procpool/ring_data.hpp"
#include "procpool/ring_fault.hpp"

namespace procpool {

enum class WriteStatus : std::uint8_t {
  kOk,
  kFull,      // no room now; wait on RingData::writable and try again
  kTooLarge,  // the payload exceeds max_payload(): it never fits this ring
  kCorrupt,   // the consumer's read_pos is impossible; see fault()
};

// The producer's view of a ring. Lives in the producer's own memory: its positions are the truth,
// and the consumer's read_pos is only ever taken as a validated hint of how much room there is.
//
// Writing is two-phase so that many records cost one release store and one notify:
//     std::span<std::byte> room;
//     if (writer.try_reserve(n, room) == WriteStatus::kOk) { fill room; writer.commit(n); }
//     ... more records ...
//     writer.publish();               // one release store makes the whole batch visible
// Hot path: no allocation, no lock, no syscall (publish() enters the kernel only if the consumer
// is asleep).
class RingWriter {
 public:
  // `bytes` is the ring's record area: capacity a power of two (is_valid_ring_capacity) and
  // 8-aligned. Resumes at the ring's published write_pos, so a new producer continues where a
  // dead one stopped.
  RingWriter(RingData& ring, std::span<std::byte> bytes) noexcept
      : ring_(&ring),
        bytes_(bytes.data()),
        capacity_(bytes.size()),
        mask_(bytes.size() - 1),
        write_(ring.write_pos.load(std::memory_order_relaxed)),
        published_(write_),
        cached_read_(ring.read_pos.load(std::memory_order_acquire)) {
    if (write_ % kRecordAlignment != 0 || cached_read_ % kRecordAlignment != 0) {
      fault_ = RingFault::kPositionMisaligned;
    } else if (cached_read_ > write_ || write_ - cached_read_ > capacity_) {
      fault_ = RingFault::kPositionOverrun;
    }
  }

  std::uint32_t max_payload() const noexcept { return ring_max_payload(capacity_); }
  std::uint64_t capacity() const noexcept { return capacity_; }
  RingFault fault() const noexcept { return fault_; }
  RingData& data() const noexcept { return *ring_; }

  // Reserves room for a record of `size` payload bytes and points `room` at it. The record is
  // not part of the ring until commit(); a second try_reserve() replaces an uncommitted one.
  WriteStatus try_reserve(std::uint32_t size, std::span<std::byte>& room) noexcept {
    if (size > max_payload()) [[unlikely]]
      return WriteStatus::kTooLarge;
    if (fault_ != RingFault::kNone) [[unlikely]]
      return WriteStatus::kCorrupt;
    const std::uint64_t footprint = ring_record_footprint(size);
    std::uint64_t offset = write_ & mask_;
    const std::uint64_t tail = capacity_ - offset;
    const std::uint64_t needed = tail < footprint ? tail + footprint : footprint;
    if (write_ + needed - cached_read_ > capacity_) {
      if (!refresh_read_position()) return WriteStatus::kCorrupt;
      if (write_ + needed - cached_read_ > capacity_) return WriteStatus::kFull;
    }
    if (tail < footprint) {
      // Records never straddle the wrap: cover the tail with one padding record (tail >= 8,
      // since positions and capacity are multiples of 8) and start the record at offset 0.
      detail::store_record_header(bytes_ + offset, static_cast<std::uint32_t>(tail - 8),
                                  kRecordTagPadding);
      write_ += tail;
      offset = 0;
    }
    // The consumer read these bytes one lap ago and may still hold their cache lines; ask for
    // ownership of the line a few records ahead now, so the store then does not stall on it.
    __builtin_prefetch(bytes_ + ((write_ + kPrefetchDistance) & mask_), 1, 3);
    reserved_ = size;
    room = std::span<std::byte>(bytes_ + offset + kRecordHeaderSize, size);
    return WriteStatus::kOk;
  }

  // Commits the reserved record with `used` <= reserved payload bytes. Local only: the consumer
  // sees it after publish().
  void commit(std::uint32_t used) noexcept {
    if (used > reserved_) used = reserved_;
    detail::store_record_header(bytes_ + (write_ & mask_), used, kRecordTagData);
    write_ += ring_record_footprint(used);
    reserved_ = 0;
  }

  // Reserve + copy + commit, for callers that already hold the payload.
  WriteStatus try_write(std::span<const std::byte> payload) noexcept {
    std::span<std::byte> room;
    if (payload.size() > max_payload()) return WriteStatus::kTooLarge;
    const auto size = static_cast<std::uint32_t>(payload.size());
    const WriteStatus status = try_reserve(size, room);
    if (status != WriteStatus::kOk) return status;
    if (size != 0) std::memcpy(room.data(), payload.data(), size);
    commit(size);
    return WriteStatus::kOk;
  }

  // Makes every committed record visible to the consumer and wakes it if it sleeps. Returns
  // true if the consumer had announced that it waits (see EventCount::notify).
  bool publish() noexcept {
    if (write_ == published_) return false;
    // SYNC POINT: the release store publishes every record byte and header written before it;
    // pairs with the consumer's acquire load of write_pos. A producer killed before this store
    // loses only the records after published_; none is ever half-visible.
    ring_->write_pos.store(write_, std::memory_order_release);
    published_ = write_;
    return ring_->readable.notify();
  }

  bool has_unpublished() const noexcept { return write_ != published_; }

  // True if a record of `size` payload bytes would fit now (re-reads the consumer's position).
  // A corrupt ring counts as "ready" so that a waiter wakes up and sees kCorrupt.
  bool can_reserve(std::uint32_t size) noexcept {
    if (fault_ != RingFault::kNone) return true;
    const std::uint64_t footprint = ring_record_footprint(size);
    const std::uint64_t tail = capacity_ - (write_ & mask_);
    const std::uint64_t needed = tail < footprint ? tail + footprint : footprint;
    if (write_ + needed - cached_read_ <= capacity_) return true;
    return !refresh_read_position() || write_ + needed - cached_read_ <= capacity_;
  }

  // Re-reads and validates the consumer's read_pos now, not only when the ring looks full: for a
  // producer that wants to catch a consumer scribbling on it while the ring has room (the pool
  // checks on each doorbell). Returns false, with fault() set, if the position is impossible (or
  // the view was already faulted).
  bool check_read_position() noexcept {
    return fault_ == RingFault::kNone && refresh_read_position();
  }

  // The consumer's read_pos as last validated: the bytes it has handed back so far.
  std::uint64_t read_position() const noexcept { return cached_read_; }

 private:
  // Loads the consumer's read_pos once and accepts it only if it is possible: aligned, not
  // behind what we saw before, not beyond what we published. Returns false (and records the
  // fault) otherwise.
  bool refresh_read_position() noexcept {
    // SYNC POINT: acquire pairs with the consumer's release store of read_pos: once we see the
    // position, the consumer has finished reading the bytes below it and we may overwrite them.
    const std::uint64_t read = ring_->read_pos.load(std::memory_order_acquire);
    if (read % kRecordAlignment != 0) [[unlikely]] {
      fault_ = RingFault::kPositionMisaligned;
    } else if (read < cached_read_) [[unlikely]] {
      fault_ = RingFault::kPositionRegressed;
    } else if (read > published_) [[unlikely]] {
      fault_ = RingFault::kPositionOverrun;
    } else {
      cached_read_ = read;
      return true;
    }
    return false;
  }

  static constexpr std::uint64_t kPrefetchDistance = 4 * kCacheLineSize;

  RingData* ring_;
  std::byte* bytes_;
  std::uint64_t capacity_;
  std::uint64_t mask_;
  std::uint64_t write_;        // next byte we will write; records in [published_, write_) pending
  std::uint64_t published_;    // the write_pos we last stored
  std::uint64_t cached_read_;  // last validated read_pos of the consumer
  std::uint32_t reserved_ = 0;
  RingFault fault_ = RingFault::kNone;
};

}  // namespace procpool
