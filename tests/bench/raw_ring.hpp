// "shm-spin" physical-limit baseline: a plain SPSC ring pair in POSIX shared memory between a
// parent and a fork()ed child, both busy-spinning. It has no framing, no supervision and no
// fault handling, so its figures bound what any real process pool can reach on this machine.
#pragma once

#include <cstddef>
#include <cstdint>

namespace procpool::bench {

struct PingPongResult {
  double p50_us;
  double p99_us;
};

// Round-trip latency: the child replies x+1 to every request x. Runs `warmup` unmeasured round
// trips, then `measured` timed ones (each verified); returns nearest-rank p50/p99 in us.
PingPongResult raw_ring_pingpong(std::size_t warmup, std::size_t measured);

// One-way throughput: the parent streams `messages` 16-byte messages to a child consumer that
// checks their sequence; returns messages per second (first write until the child's
// verified completion report).
double raw_ring_oneway_msgs_per_s(std::uint64_t messages);

}  // namespace procpool::bench
