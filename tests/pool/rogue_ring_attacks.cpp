// The rogue worker's lies about the result ring: random bytes over its records or positions
// (scribble_ring), record headers that lie about their length (lie_length), and positions moved
// backwards or misaligned (move_back).

#include <algorithm>  // std::min
#include <atomic>     // std::memory_order
#include <climits>    // UINT32_MAX
#include <cstdint>    // fixed-width integers
#include <random>     // std::mt19937_64
#include <span>       // std::span

#include "procpool/detail/record_header.hpp"  // store_record_header
#include "procpool/segment.hpp"               // RingData
#include "rogue_attacks.hpp"
#include "rogue_channel.hpp"  // Channel, park, fill_random

namespace rogue {

[[noreturn]] void scribble_ring(Channel& channel, std::mt19937_64& rng) {
  channel.settle();
  procpool::RingData& ring = channel.results();
  const std::span<std::byte> bytes = channel.result_bytes();
  const std::uint64_t capacity = bytes.size();
  const std::uint64_t write = ring.write_pos.load(std::memory_order_relaxed);
  switch (rng() % 4) {
    case 0:  // every record byte random, then more "published" (at most the free room)
      fill_random(bytes, rng);
      ring.write_pos.store(write + 8 * (1 + rng() % (capacity / 8)), std::memory_order_release);
      break;
    case 1:  // the write position random
      ring.write_pos.store(rng(), std::memory_order_release);
      break;
    case 2: {  // random bytes where the next record goes, published
      const std::uint64_t length = 8 * (1 + rng() % 64);
      const std::uint64_t offset = write & (capacity - 1);
      fill_random(bytes.subspan(offset, std::min(length, capacity - offset)), rng);
      ring.write_pos.store(write + length, std::memory_order_release);
      break;
    }
    case 3: {  // the ring's shared header: both positions and both eventcounts
      ring.write_pos.store(rng(), std::memory_order_release);
      ring.read_pos.store(rng(), std::memory_order_release);
      fill_random(
          std::span<std::byte>(reinterpret_cast<std::byte*>(&ring.readable), sizeof ring.readable),
          rng);
      break;
    }
  }
  channel.ring();
  park();
}

[[noreturn]] void lie_length(Channel& channel, std::mt19937_64& rng) {
  channel.settle();
  procpool::RingData& ring = channel.results();
  const std::span<std::byte> bytes = channel.result_bytes();
  const std::uint64_t capacity = bytes.size();
  const std::uint32_t max_payload = procpool::ring_max_payload(capacity);
  const std::uint64_t write = ring.write_pos.load(std::memory_order_relaxed);
  const std::uint64_t offset = write & (capacity - 1);
  const std::uint64_t tail = capacity - offset;
  switch (rng() % 3) {
    case 0: {  // larger than any record may be
      const auto size = static_cast<std::uint32_t>(
          max_payload + 1 + rng() % (std::uint64_t{UINT32_MAX} - max_payload));
      procpool::detail::store_record_header(bytes.data() + offset, size, procpool::kRecordTagData);
      break;
    }
    case 1: {  // a legal size, but only the header is published
      const auto size = static_cast<std::uint32_t>(1 + rng() % max_payload);
      procpool::detail::store_record_header(bytes.data() + offset, size, procpool::kRecordTagData);
      break;
    }
    case 2: {  // padding that does not end at the ring's end
      std::uint32_t size = static_cast<std::uint32_t>(8 * (rng() % (capacity / 8)));
      if (size + 8 == tail) size += 8;
      procpool::detail::store_record_header(bytes.data() + offset, size,
                                            procpool::kRecordTagPadding);
      break;
    }
  }
  ring.write_pos.store(write + 8, std::memory_order_release);
  channel.ring();
  park();
}

[[noreturn]] void move_back(Channel& channel, std::mt19937_64& rng) {
  channel.settle();
  procpool::RingData& results = channel.results();
  procpool::RingData& tasks = channel.segment().to_worker();
  const std::uint64_t write = results.write_pos.load(std::memory_order_relaxed);
  switch (rng() % 4) {
    case 0:  // the result ring's write position backwards (the supervisor has read up to it)
      results.write_pos.store(write - 8 * (1 + rng() % (write / 8)), std::memory_order_release);
      break;
    case 1:  // the result ring's write position misaligned
      results.write_pos.store(write + 1 + rng() % 7, std::memory_order_release);
      break;
    case 2:  // the task ring's read position beyond what the supervisor published
      tasks.read_pos.store(tasks.write_pos.load(std::memory_order_acquire) + 8 * (1 + rng() % 4096),
                           std::memory_order_release);
      break;
    case 3:  // the task ring's read position misaligned
      tasks.read_pos.store(tasks.read_pos.load(std::memory_order_relaxed) + 1 + rng() % 7,
                           std::memory_order_release);
      break;
  }
  channel.ring();
  park();
}

}  // namespace rogue
