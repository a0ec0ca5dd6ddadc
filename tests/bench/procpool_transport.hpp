// procpool's transport measured the way the raw-ring baseline is: a segment shared by a parent
// (supervisor role) and a fork()ed child (worker role), ring views, frames and eventcount waits
// exactly as the runtime uses them, with the default spin-then-sleep policy.
#pragma once

#include <cstddef>  // std::size_t
#include <cstdint>  // std::uint64_t

#include "raw_ring.hpp"  // PingPongResult

namespace procpool::bench {

// L1: one task frame (8-byte x) out, one result frame (x + 1) back, one at a time.
PingPongResult procpool_pingpong(std::size_t warmup, std::size_t measured);

// One-way: `messages` 16-byte records streamed to the child, published in batches; the child
// checks the sequence and reports a checksum back. Returns messages per second.
double procpool_oneway_msgs_per_s(std::uint64_t messages);

// The demo: `tasks` task frames pipelined to a worker that answers each with x + 1, at most
// `window` outstanding. Returns tasks per second; throws procpool::Error on a wrong answer.
double procpool_pipelined_tasks_per_s(std::uint64_t tasks, std::uint32_t window);

}  // namespace procpool::bench
