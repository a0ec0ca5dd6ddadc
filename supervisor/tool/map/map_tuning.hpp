#pragma once

// The sizes and bounds of one `procpool map` run: how many lines are in flight, how they are
// batched, how much memory results may hold, and how long each wait may last.

#include <chrono>   // the bounds
#include <cstddef>  // std::size_t
#include <cstdint>  // std::uint64_t

namespace procpool::tool {

// Chosen with docs/workloads.md M1 on 2 cores, where batches of 256 to 1024 lines and
// pipeline depths of 32 to 128 ran equally fast. The batch amortises the pool's lock over many
// tasks; the window keeps both workers busy while a slow line holds up ordered output.

inline constexpr std::size_t kWindow = 1
                                       << 16;  // lines in flight: submitted, result not yet written
inline constexpr std::size_t kWindowMask = kWindow - 1;
inline constexpr std::size_t kBatch = 512;  // lines per Pool::submit_batch
static_assert(kWindow % kBatch == 0, "unordered mode hands out the window in whole batches");
inline constexpr std::size_t kWakeBatch = 256;  // results to wait for before waking the main thread
// Input bytes in flight, and bytes of large results waiting to be written (an ordered run
// behind one slow line): both bound memory when lines or results are large.
inline constexpr std::uint64_t kMaxInFlightBytes = 64ULL << 20;
inline constexpr std::uint64_t kMaxPendingResultBytes = 256ULL << 20;
inline constexpr std::size_t kSmallResult = 64;  // results up to this size are not counted above
// Lines in flight before any result is in: the first results tell how large they are, and
// from then on the lines in flight are as many as the pending-results budget holds.
inline constexpr std::uint64_t kSlowStartLines = 64;
inline constexpr std::size_t kKeepCapacity =
    4096;  // a slot frees a larger result buffer once written
// A slot frees a larger copy of a chunked line once its result is written: every slot of the
// window keeps what it holds.
inline constexpr std::size_t kKeepInputCapacity = 256;
inline constexpr std::size_t kOutputBuffer = 1 << 20;
inline constexpr std::chrono::milliseconds kProgressInterval{200};
inline constexpr int kShortWaitMs =
    2;  // bounds output latency while waiting for a batch of results
inline constexpr int kIdleWaitMs = 1000;  // safety net: every wait is bounded
// A stop at once (second signal): how long the pool may take to reap the workers it killed,
// and how long standard output may take to accept the results that are in.
inline constexpr std::chrono::seconds kForcedStopBound{2};
inline constexpr std::chrono::seconds kForcedFlushBound{1};
inline constexpr std::size_t kMaxPendingErrors = 64 * 1024;  // failure messages buffered, bytes

}  // namespace procpool::tool
