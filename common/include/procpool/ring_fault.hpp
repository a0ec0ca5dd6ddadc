#pragma once
#include "procpool/detail/require_cxx20.hpp"

#include <cstdint>      // std::uint8_t
#include <string_view>  // std::string_view

namespace procpool {

// What a ring view found wrong in data the other process wrote. Any fault is sticky: the view
// refuses further work, and the runtime ends the peer that wrote it (docs/design-rules.md §18).
enum class RingFault : std::uint8_t {
  kNone,
  kPositionRegressed,   // the peer's position moved backwards
  kPositionOverrun,     // write_pos - read_pos > capacity, or read_pos beyond what was published
  kPositionMisaligned,  // a position not a multiple of the record alignment
  kBadRecordTag,        // a record header whose tag is neither data nor padding
  kRecordTooLarge,      // a record header claiming more than the ring's maximum payload
  kRecordOverrun,       // a record extending past the published data or the end of the ring
  kBadPadding,          // a padding record that does not end exactly at the end of the ring
};

constexpr std::string_view to_string(RingFault fault) noexcept {
  switch (fault) {
    case RingFault::kNone:
      return "no fault";
    case RingFault::kPositionRegressed:
      return "ring position moved backwards";
    case RingFault::kPositionOverrun:
      return "ring position beyond the published data";
    case RingFault::kPositionMisaligned:
      return "ring position not 8-byte aligned";
    case RingFault::kBadRecordTag:
      return "record header with an unknown tag";
    case RingFault::kRecordTooLarge:
      return "record larger than the ring allows";
    case RingFault::kRecordOverrun:
      return "record extends past the published data";
    case RingFault::kBadPadding:
      return "padding record does not end at the ring's end";
  }
  return "unknown ring fault";
}

}  // namespace procpool
