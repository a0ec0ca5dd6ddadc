#pragma once
#include "procpool/detail/require_cxx20.hpp"

#include <cstddef>  // std::byte
#include <cstdint>  // std::uint32_t, std::uint64_t
#include <span>     // std::span

#include "procpool/detail/record_header.hpp"
#include "procpool/ring_data.hpp"
#include "procpool/ring_fault.hpp"

namespace procpool {

enum class ReadStatus : std::uint8_t {
  kOk,
  kEmpty,    // nothing published; wait on RingData::readable and try again
  kCorrupt,  // the producer wrote something impossible; see fault()
};

// The consumer's view of a ring. Lives in the consumer's own memory and trusts nothing the
// producer wrote: every position and every record header is loaded once into a local and
// validated before use (docs/design-rules.md §17). A violation is reported as kCorrupt with a
// RingFault, never as a crash or an out-of-bounds read.
//
// Reading is two-phase so that many records cost one release store:
//     std::span<const std::byte> record;
//     while (reader.try_read(record) == ReadStatus::kOk) { use record (see below); }
//     reader.release();             // hands the bytes back to the producer
// A record's bytes stay valid until release(). They are still shared memory the producer can
// scribble on: copy a payload out before parsing it, and read each field once.
class RingReader {
 public:
  RingReader(RingData& ring, std::span<std::byte> bytes) noexcept
      : ring_(&ring),
        bytes_(bytes.data()),
        capacity_(bytes.size()),
        mask_(bytes.size() - 1),
        read_(ring.read_pos.load(std::memory_order_relaxed)),
        released_(read_),
        cached_write_(read_) {
    if (read_ % kRecordAlignment != 0) fault_ = RingFault::kPositionMisaligned;
  }

  std::uint32_t max_payload() const noexcept { return ring_max_payload(capacity_); }
  std::uint64_t capacity() const noexcept { return capacity_; }
  RingFault fault() const noexcept { return fault_; }
  RingData& data() const noexcept { return *ring_; }

  // Takes the next record, skipping padding, and points `record` at its payload.
  ReadStatus try_read(std::span<const std::byte>& record) noexcept {
    for (;;) {
      if (fault_ != RingFault::kNone) [[unlikely]]
        return ReadStatus::kCorrupt;
      if (read_ == cached_write_) {
        if (!refresh_write_position()) return ReadStatus::kCorrupt;
        if (read_ == cached_write_) return ReadStatus::kEmpty;
      }
      const std::uint64_t offset = read_ & mask_;
      const std::uint64_t available = cached_write_ - read_;  // >= 8: both are 8-aligned
      const std::uint64_t header = detail::load_record_header(bytes_ + offset);
      const std::uint64_t size = detail::record_size(header);
      const std::uint32_t tag = detail::record_tag(header);
      if (tag == kRecordTagData) [[likely]] {
        const std::uint64_t footprint = ring_record_footprint(size);
        if (size > max_payload()) [[unlikely]]
          return fail(RingFault::kRecordTooLarge);
        if (footprint > available || offset + footprint > capacity_) [[unlikely]] {
          return fail(RingFault::kRecordOverrun);
        }
        record = std::span<const std::byte>(bytes_ + offset + kRecordHeaderSize, size);
        read_ += footprint;
        return ReadStatus::kOk;
      }
      if (tag != kRecordTagPadding) [[unlikely]]
        return fail(RingFault::kBadRecordTag);
      // Padding must cover exactly the rest of the ring, and that much must be published.
      const std::uint64_t tail = capacity_ - offset;
      if (size + kRecordHeaderSize != tail) [[unlikely]]
        return fail(RingFault::kBadPadding);
      if (tail > available) [[unlikely]]
        return fail(RingFault::kRecordOverrun);
      read_ += tail;
    }
  }

  // Hands every record read so far back to the producer, and wakes it if it waits for room.
  // Views returned by try_read() are invalid afterwards. Returns true if the producer had
  // announced that it waits for room (see EventCount::notify).
  bool release() noexcept {
    if (read_ == released_) return false;
    // SYNC POINT: the release store orders our reads of the records before the producer's
    // reuse of their bytes; pairs with the producer's acquire load of read_pos.
    ring_->read_pos.store(read_, std::memory_order_release);
    released_ = read_;
    return ring_->writable.notify();
  }

  // The position after the last record read: pass it to release_to() to hand back everything
  // up to and including that record while keeping later ones.
  std::uint64_t position() const noexcept { return read_; }

  // Hands back the bytes below `position` (a value position() returned, not below an earlier
  // release). Records read after that position stay valid. Returns as release() does.
  bool release_to(std::uint64_t position) noexcept {
    if (position <= released_ || position > read_) return false;
    // SYNC POINT: as in release().
    ring_->read_pos.store(position, std::memory_order_release);
    released_ = position;
    return ring_->writable.notify();
  }

  // True if try_read() would not return kEmpty (re-reads the producer's position). A corrupt
  // ring counts as "ready" so that a waiter wakes up and sees kCorrupt.
  bool poll() noexcept {
    if (fault_ != RingFault::kNone || read_ != cached_write_) return true;
    return !refresh_write_position() || read_ != cached_write_;
  }

 private:
  // Loads the producer's write_pos once and accepts it only if it is possible: aligned, not
  // behind what we saw before, at most one ring ahead of what we have read.
  bool refresh_write_position() noexcept {
    // SYNC POINT: acquire pairs with the producer's release store of write_pos: every record
    // below the loaded position is completely written.
    const std::uint64_t write = ring_->write_pos.load(std::memory_order_acquire);
    if (write % kRecordAlignment != 0) [[unlikely]] {
      fault_ = RingFault::kPositionMisaligned;
    } else if (write < cached_write_) [[unlikely]] {
      fault_ = RingFault::kPositionRegressed;
    } else if (write - released_ > capacity_) [[unlikely]] {
      // The producer may only write into bytes we have released.
      fault_ = RingFault::kPositionOverrun;
    } else {
      cached_write_ = write;
      return true;
    }
    return false;
  }

  ReadStatus fail(RingFault fault) noexcept {
    fault_ = fault;
    return ReadStatus::kCorrupt;
  }

  RingData* ring_;
  std::byte* bytes_;
  std::uint64_t capacity_;
  std::uint64_t mask_;
  std::uint64_t read_;          // next byte to read; records in [released_, read_) held by views
  std::uint64_t released_;      // the read_pos we last stored
  std::uint64_t cached_write_;  // last validated write_pos of the producer
  RingFault fault_ = RingFault::kNone;
};

}  // namespace procpool
