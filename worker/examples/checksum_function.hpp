#pragma once

// The docs/workloads.md B1 function: the sum, modulo 2^64, of the little-endian 64-bit words of a
// buffer whose length is a multiple of 8. One definition for the checksum worker and for the
// B1 in-process context figure (tests/bench/pool_bench.cpp), so both time the same code. Four
// independent sums let the CPU (and the vectoriser) add several words per cycle; the result is
// the same as one running sum, since addition modulo 2^64 is associative.

#include <cstddef>  // std::byte, std::size_t
#include <cstdint>  // std::uint64_t
#include <cstring>  // std::memcpy

namespace procpool::examples {

inline std::uint64_t checksum_words(const std::byte* data, std::size_t size) noexcept {
  std::uint64_t sum[4] = {0, 0, 0, 0};
  std::size_t i = 0;
  for (; i + 32 <= size; i += 32) {
    std::uint64_t words[4];
    std::memcpy(words, data + i, 32);
    sum[0] += words[0];
    sum[1] += words[1];
    sum[2] += words[2];
    sum[3] += words[3];
  }
  for (; i + 8 <= size; i += 8) {
    std::uint64_t word;
    std::memcpy(&word, data + i, 8);
    sum[0] += word;
  }
  return sum[0] + sum[1] + sum[2] + sum[3];
}

}  // namespace procpool::examples
