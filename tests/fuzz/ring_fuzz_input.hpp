#pragma once

// The input format of ring_reader_fuzz, shared with the corpus generator that writes its seeds.
// Everything a producer process could write is in the input: both positions, the record area
// byte for byte, and a script of what the producer does between the consumer's reads (moving its
// position, rewriting headers and bytes). All integers little-endian; a short input reads as
// zeros past its end.
//
//   u8   ring size code: capacity = kMinRingCapacity << (code % kRingSizeCodes), 64..1024 bytes
//   u8   flags: kProducerWaits = the producer has announced that it sleeps until there is room
//   u64  read_pos the consumer starts from (RingData::read_pos)
//   u64  write_pos - read_pos (wrapping): the producer's published RingData::write_pos
//   capacity bytes: the record area
//   until the end: ops, one RingOp byte (taken modulo kRingOpCount) plus its operands

#include <cstdint>  // fixed-width integers

#include "procpool/ring_data.hpp"

namespace procpool::fuzz {

inline constexpr std::uint8_t kRingSizeCodes = 5;

constexpr std::uint64_t ring_capacity_for(std::uint8_t size_code) noexcept {
  return kMinRingCapacity << (size_code % kRingSizeCodes);
}

inline constexpr std::uint8_t kProducerWaits = 1U << 0;

enum class RingOp : std::uint8_t {
  kRead = 0,         // one try_read()
  kDrain = 1,        // try_read() until it returns something other than kOk
  kRelease = 2,      // release()
  kReleaseTo = 3,    // u8 pick: < 0x80 a position() seen after a record (pick % seen), else
                     // u64 any position at all; release_to() it
  kPoll = 4,         // poll()
  kMoveWrite = 5,    // i32 delta: the producer adds it to write_pos (backwards and misaligned too)
  kScribble = 6,     // u16 offset, 8 raw bytes: the producer overwrites record-area bytes
  kWriteData = 7,    // u16 offset, u32 size: a data record header at that 8-aligned offset
  kWritePadding = 8  // u16 offset: a padding header at that 8-aligned offset covering the rest
};
inline constexpr std::uint8_t kRingOpCount = 9;

}  // namespace procpool::fuzz
