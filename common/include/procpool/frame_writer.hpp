#pragma once
#include "procpool/detail/require_cxx20.hpp"

#include <cstddef>  // std::byte, std::size_t
#include <cstdint>  // fixed-width integers
#include <span>     // std::span

#include "procpool/ring_writer.hpp"
#include "procpool/wire_format.hpp"

namespace procpool {

// Writes one payload into a ring as frames: one frame when it fits a record, otherwise
// consecutive fragments of the same type and task id, every one but the last with kFrameMore
// (docs/protocol.md, "Large payloads"). It writes as many fragments as the ring has room for and
// remembers where it stopped, so a producer that must not block (the pool's supervisor thread)
// continues when the consumer hands bytes back, and one that may block (the worker) waits and
// calls again. Frames are committed, not published: the caller publishes when it wants.
//
// The payload itself is the caller's: pass the same bytes to every write() of one payload.
// No allocation, lock or syscall.
class FrameWriter {
 public:
  // Starts a payload. `header` gives type, task id, handler id, attempt, and kFrameChunk if the
  // payload is a chunk, its priority flags and kFrameProgress; kFrameMore and payload_size are
  // the writer's.
  void begin(const FrameHeader& header) noexcept {
    header_ = header;
    header_.flags = static_cast<std::uint16_t>(header.flags & (kKnownFrameFlags & ~kFrameMore));
    offset_ = 0;
    active_ = true;
  }

  // Writes (more of) `payload`. kOk: every byte is committed and the writer is idle again.
  // kFull: the ring has no room for the next fragment; call again once it has (can_continue()).
  // kTooLarge: the ring cannot hold even a header. kCorrupt: the consumer's position is
  // impossible (see RingWriter::fault()). After kTooLarge or kCorrupt the writer is idle.
  WriteStatus write(RingWriter& ring, std::span<const std::byte> payload) noexcept;

  // True while a payload is started and not completely written.
  bool active() const noexcept { return active_; }
  // Payload bytes committed so far.
  std::size_t offset() const noexcept { return offset_; }
  // The record size the next fragment of `payload` needs (for RingWriter::can_reserve).
  std::uint32_t next_record_size(const RingWriter& ring,
                                 std::span<const std::byte> payload) const noexcept;
  // Abandons the payload (its consumer died): the writer is idle.
  void reset() noexcept { active_ = false; }

 private:
  FrameHeader header_{};
  std::size_t offset_ = 0;
  bool active_ = false;
};

}  // namespace procpool
