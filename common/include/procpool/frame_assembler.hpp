#pragma once
#include "procpool/detail/require_cxx20.hpp"

#include <cstddef>      // std::byte, std::size_t
#include <cstdint>      // fixed-width integers
#include <span>         // std::span
#include <string>       // std::string
#include <string_view>  // std::string_view
#include <vector>       // std::vector

#include "procpool/wire_format.hpp"

namespace procpool {

// What FrameAssembler::add() made of a frame. Everything after kIncomplete is a protocol
// violation by the sender; the assembler has then dropped what it held.
enum class AssemblyStatus : std::uint8_t {
  kComplete,       // payload() holds a whole payload
  kIncomplete,     // a fragment was added; more follow
  kNotAssembled,   // a frame type without task data (only kTask, kResult, kError, kProgress)
  kTaskChanged,    // a fragment of another task before the last fragment of this one
  kTypeChanged,    // a fragment of another frame type than the first fragment's
  kHeaderChanged,  // a fragment with another handler id or attempt than the first fragment's
  kChunkChanged,   // fragments of one payload disagree on kFrameChunk
  kEmptyFragment,  // a fragment with kFrameMore and no bytes (it can only stall the receiver)
  kTooLarge,       // the payload exceeds frame_payload_limit() for its type
};

inline bool is_violation(AssemblyStatus status) noexcept {
  return status != AssemblyStatus::kComplete && status != AssemblyStatus::kIncomplete;
}
std::string_view to_string(AssemblyStatus status) noexcept;

// Puts a payload back together from the frames FrameWriter wrote (docs/protocol.md, "Large
// payloads"), trusting nothing the sender wrote: each fragment's header (already validated by
// decode_frame) must continue the first fragment's (same task, type, handler, attempt and
// kFrameChunk), and the running total must stay within frame_payload_limit(type, max_payload),
// checked before a byte is copied. Each fragment's bytes are read once, by one copy.
//
// A payload that came as one frame is left in place by default (payload() points into the
// ring: for a receiver that trusts its sender, like the worker); SingleFrame::kCopy copies it
// too, so that the caller never parses shared memory. Fragments are always copied.
//
// Once warm the hot path does not allocate: the buffer keeps its capacity from payload to
// payload, and buffers taken out with take() come back through recycle(). A receiver that has
// assembled a large payload keeps one buffer of that size (grown by doubling) for as
// long as it lives, as the allocator would keep a freed chunk below its mmap threshold.
class FrameAssembler {
 public:
  enum class SingleFrame : std::uint8_t { kInPlace, kCopy };

  explicit FrameAssembler(std::uint64_t max_payload = 0,
                          SingleFrame single = SingleFrame::kInPlace);

  // The pool's limit, once known (the worker learns it from kInit).
  void set_max_payload(std::uint64_t max_payload) noexcept { max_payload_ = max_payload; }
  std::uint64_t max_payload() const noexcept { return max_payload_; }

  // Adds one decoded frame. On kComplete, header() and payload() describe the whole payload
  // until the next add() or take().
  AssemblyStatus add(const FrameHeader& header, std::span<const std::byte> payload);

  // The first fragment's header, without kFrameMore and with payload_size the total (clamped
  // to 32 bits; the total itself is payload().size()).
  const FrameHeader& header() const noexcept { return header_; }
  std::span<const std::byte> payload() const noexcept { return complete_; }
  std::string_view text() const noexcept {
    return {reinterpret_cast<const char*>(complete_.data()), complete_.size()};
  }
  // True if payload() points into the ring rather than into the assembler's buffer.
  bool in_place() const noexcept { return in_place_; }
  // True between the first and the last fragment of a payload.
  bool assembling() const noexcept { return assembling_; }

  // Moves a complete payload out of the buffer (empty if in_place()), for a caller that keeps
  // it while it reads later frames. The next payload goes into a buffer given back by recycle().
  std::string take();
  // Gives a buffer from take() back for reuse: up to 64 of at most 1 MiB each, and of larger
  // ones only the largest, for the next fragmented payload.
  void recycle(std::string buffer);

  // Drops a payload being assembled (its sender is gone).
  void reset() noexcept;

 private:
  AssemblyStatus fail(AssemblyStatus status) noexcept;
  AssemblyStatus begin(const FrameHeader& header, std::span<const std::byte> payload);

  std::uint64_t max_payload_;
  SingleFrame single_;
  FrameHeader header_{};
  std::uint64_t limit_ = 0;  // frame_payload_limit() of the payload being assembled
  bool assembling_ = false;
  bool in_place_ = false;
  std::span<const std::byte> complete_;
  std::string buffer_;
  std::vector<std::string> spare_;
  std::string large_spare_;
};

}  // namespace procpool
