// The rogue worker's flood: the doorbell eventfd written, or every ring futex woken, in a tight
// loop.

#include <sys/eventfd.h>  // eventfd_write

#include <atomic>     // std::atomic (the futex words)
#include <chrono>     // deadlines
#include <climits>    // INT_MAX
#include <cstdint>    // fixed-width integers
#include <stdexcept>  // std::runtime_error
#include <string>     // std::string

#include "procpool/detail/futex.hpp"  // futex_wake
#include "procpool/segment.hpp"       // Segment
#include "rogue_attacks.hpp"
#include "rogue_channel.hpp"  // Channel

namespace rogue {

std::uint64_t flood(Channel& channel, const std::string& mode, std::chrono::milliseconds length) {
  const auto until = Clock::now() + length;
  procpool::Segment& segment = channel.segment();
  // The epoch word each eventcount's waiters sleep on is its first member.
  const std::atomic<std::uint32_t>* futexes[] = {
      reinterpret_cast<const std::atomic<std::uint32_t>*>(&segment.to_supervisor().readable),
      reinterpret_cast<const std::atomic<std::uint32_t>*>(&segment.to_supervisor().writable),
      reinterpret_cast<const std::atomic<std::uint32_t>*>(&segment.to_worker().readable),
      reinterpret_cast<const std::atomic<std::uint32_t>*>(&segment.to_worker().writable),
  };
  std::uint64_t count = 0;
  while (Clock::now() < until) {
    for (int i = 0; i < 256; ++i, ++count) {
      if (mode == "doorbell") {
        ::eventfd_write(channel.doorbell_fd(), 1);
      } else if (mode == "futex") {
        procpool::detail::futex_wake(futexes[count % 4], INT_MAX);
      } else {
        throw std::runtime_error("flood: unknown mode \"" + mode + "\"");
      }
    }
  }
  return count;
}

}  // namespace rogue
