#pragma once

// The rogue worker's attacks on its supervisor, one family per file: lies about the result ring
// (rogue_ring_attacks.cpp), random bytes over shared memory (rogue_scribble_attacks.cpp), bad
// frames (rogue_frame_attacks.cpp) and floods (rogue_flood_attack.cpp). rogue_worker.cpp says
// what each handler's input means. Every attack that does not return waits to be killed (park).

#include <chrono>   // std::chrono::milliseconds
#include <cstdint>  // std::uint64_t
#include <random>   // std::mt19937_64
#include <string>   // std::string

#include "rogue_channel.hpp"  // Channel

namespace rogue {

// Lies about the result ring (and the task ring's read position).
[[noreturn]] void scribble_ring(Channel& channel, std::mt19937_64& rng);
[[noreturn]] void lie_length(Channel& channel, std::mt19937_64& rng);
[[noreturn]] void move_back(Channel& channel, std::mt19937_64& rng);

// Random bytes over the control block, the whole segment, or the segment header.
[[noreturn]] void scribble_control(Channel& channel, std::mt19937_64& rng);
[[noreturn]] void scribble_all(Channel& channel, std::mt19937_64& rng);
void scribble_arena(Channel& channel, std::mt19937_64& rng);

// Well-formed ring records holding bad frames, and result fragments without end.
[[noreturn]] void bad_frame(Channel& channel, const std::string& kind, std::uint64_t task_id,
                            std::mt19937_64& rng);
[[noreturn]] void fragment_bomb(Channel& channel, std::uint64_t task_id, std::mt19937_64& rng);

// The doorbell or the ring futexes woken in a tight loop for `length`; how many times.
std::uint64_t flood(Channel& channel, const std::string& mode, std::chrono::milliseconds length);

}  // namespace rogue
