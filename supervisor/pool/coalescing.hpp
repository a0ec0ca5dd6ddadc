#pragma once

// Coalescing (coalescing.cpp): the dispatcher's chunking, which the user never asks for. While a
// worker is busy, plain tasks that arrive for it wait in the queue; when it has room, the ones
// queued behind the next task go with it in one frame, as a chunk (chunk_format.hpp, the same
// frames Pool::submit_chunked sends, so the worker SDK is unchanged). A lone task on an idle
// worker still goes at once, alone: latency is not traded for throughput.

#include <cstddef>  // std::size_t

namespace procpool::detail {

// Frames of coalescable tasks a worker holds at most: one it serves, one queued behind it, so it
// never waits for the supervisor between frames while the next frame fills up in the queue.
inline constexpr unsigned kCoalescedFrames = 2;
// A task whose payload is larger goes alone: a copy into a chunk costs more than a frame saves.
inline constexpr std::size_t kCoalescedPayloadMax = 4096;
// A coalesced frame's payload at most (and never more than PoolOptions::max_payload).
inline constexpr std::size_t kCoalescedBytes = 64 * 1024;

}  // namespace procpool::detail
