// The rogue worker's random bytes over shared memory: every control-block field
// (scribble_control), the whole segment (scribble_all), and the segment header, which the
// supervisor never reads back (scribble_arena).

#include <atomic>   // std::memory_order
#include <cstddef>  // std::byte
#include <cstdint>  // fixed-width integers
#include <random>   // std::mt19937_64
#include <span>     // std::span

#include "procpool/segment.hpp"  // Segment, WorkerControl, SegmentHeader
#include "rogue_attacks.hpp"
#include "rogue_channel.hpp"  // Channel, park, fill_random

namespace rogue {

[[noreturn]] void scribble_control(Channel& channel, std::mt19937_64& rng) {
  const std::uint64_t variant = rng() % 3;
  procpool::WorkerControl& control = channel.control();
  // Every field random; then what this variant says about the heartbeat and the running task.
  // Repeated every millisecond, so the SDK's heartbeat thread cannot repair it.
  auto scribble = [&] {
    control.cancel_task_id.store(rng(), std::memory_order_relaxed);
    switch (variant) {
      case 0:
        control.heartbeat_ms.store(rng(), std::memory_order_relaxed);
        control.current_task_id.store(rng(), std::memory_order_relaxed);
        break;
      case 1:
        control.heartbeat_ms.store(0, std::memory_order_relaxed);
        control.current_task_id.store(rng(), std::memory_order_relaxed);
        break;
      case 2:
        control.heartbeat_ms.store(~std::uint64_t{0} - rng() % 1000, std::memory_order_relaxed);
        control.current_task_id.store(0, std::memory_order_relaxed);
        break;
    }
  };
  scribble();
  channel.ring();
  park(scribble);
}

// Everything the worker can reach. The supervisor reads published answers first (settle), so
// what it finds afterwards is this task's doing alone.
[[noreturn]] void scribble_all(Channel& channel, std::mt19937_64& rng) {
  channel.settle();
  procpool::Segment& segment = channel.segment();
  const std::span<std::byte> whole(
      reinterpret_cast<std::byte*>(&segment.control()) - segment.layout().control_offset,
      segment.size());
  auto scribble = [&] { fill_random(whole, rng); };
  scribble();
  channel.ring();
  park(scribble);
}

void scribble_arena(Channel& channel, std::mt19937_64& rng) {
  procpool::Segment& segment = channel.segment();
  // The header: the supervisor keeps its own copy, the SDK its validated one.
  fill_random(std::span<std::byte>(reinterpret_cast<std::byte*>(&segment.control()) -
                                       segment.layout().control_offset,
                                   sizeof(procpool::SegmentHeader)),
              rng);
}

}  // namespace rogue
