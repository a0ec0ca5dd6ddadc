#pragma once
#include "procpool/detail/require_cxx20.hpp"

#include <cstddef>  // std::size_t
#include <cstdint>  // std::uint64_t

#include "procpool/wire_format.hpp"

namespace procpool {

// The one place that says how large a payload may grow, for the sender (which refuses or
// truncates) and for the receiver (which treats anything larger as a protocol violation).

// A kError message is cut to this many bytes by the worker: an error report never needs to be
// large, and bounding it lets the supervisor bound an error's payload without knowing the task.
inline constexpr std::size_t kMaxErrorMessage = 64 * 1024;

// The largest payload, in bytes and summed over all its fragments, a frame of `type` may carry
// in a pool whose tasks and results are at most `max_payload` bytes (the kInit value). kTask and
// kResult carry task data, and so does kProgress (a partial result); kError carries its code, with
// kFrameErrorDetail a type name of at most kMaxExceptionType and a code, and a message of at most
// kMaxErrorMessage; every other type carries nothing that is ever assembled, so 0.
constexpr std::uint64_t frame_payload_limit(FrameType type, std::uint64_t max_payload) noexcept {
  switch (type) {
    case FrameType::kTask:
    case FrameType::kResult:
    case FrameType::kProgress:
      return max_payload;
    case FrameType::kError:  // the larger of the two forms: with kFrameErrorDetail
      return kErrorDetailHead + kMaxExceptionType + kMaxErrorMessage;
    default:
      return 0;
  }
}

// The payload bytes one fragment can hold in a ring whose largest record is `ring_max_payload`
// bytes (RingWriter::max_payload()): one record less the frame header.
constexpr std::size_t fragment_capacity(std::uint32_t ring_max_payload) noexcept {
  return ring_max_payload - sizeof(FrameHeader);
}

}  // namespace procpool
