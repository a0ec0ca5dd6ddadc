#pragma once

// Whether the lines of a batch travel to the workers one task per line or packed in chunks
// (Pool::submit_chunked, many lines per message), and how many lines a chunk holds.
//
// One task per line costs the pool a task record, a completion and a queue entry per line,
// which caps a fast handler's throughput; a chunk costs that once for many lines. But a chunk
// runs on one worker as a whole: behind a slow line its other lines wait, at a signal its
// lines share one grace, and the last chunks leave workers idle. So lines are chunked only
// while they are seen to be fast, with chunks small enough to run in about kChunkRunTime on
// one worker; slow lines, and the first lines of a run (nothing seen yet), go one per task.
//
// The speed is measured, not guessed from the handler: over each interval of at least
// kChunkSampleInterval, the time per line of one worker is the interval times the workers
// over the results taken in it. An interval that waited for input counts as slow, which at
// worst keeps a run on one task per line, as before chunking existed.
//
// For tests, which must not depend on how fast the machine is: PROCPOOL_MAP_CHUNK_LINES=N in
// the environment fixes the chunks at N lines (0: one task per line), measuring nothing.

#include <chrono>    // the clock
#include <cstddef>   // std::size_t
#include <cstdint>   // std::uint64_t
#include <optional>  // the fixed chunk size

namespace procpool::tool {

// A chunk's lines should run in about this long on one worker.
inline constexpr std::chrono::microseconds kChunkRunTime{1000};
inline constexpr std::chrono::milliseconds kChunkSampleInterval{10};
// Below this many lines a chunk saves too little to be worth its drawbacks.
inline constexpr std::size_t kMinChunkLines = 32;
// Longer lines always go one per task: their chunk would be few lines, and a chunked line is
// kept twice (see MapRun::Slot::input).
inline constexpr std::size_t kMaxChunkedLine = 4096;

class ChunkPolicy {
 public:
  using Clock = std::chrono::steady_clock;

  // `max_chunk`: the most lines one chunk may hold (a batch).
  ChunkPolicy(unsigned workers, std::size_t max_chunk, Clock::time_point start,
              std::optional<std::size_t> fixed = fixed_from_environment());

  // The lines per chunk for the next batch, or 0 for one task per line. `taken`: the results
  // taken out of the window so far.
  std::size_t chunk_lines(Clock::time_point now, std::uint64_t taken);

  // PROCPOOL_MAP_CHUNK_LINES, if set to a number.
  static std::optional<std::size_t> fixed_from_environment();

 private:
  unsigned workers_;
  std::size_t max_chunk_;
  Clock::time_point mark_;        // the start of the current interval
  std::uint64_t mark_taken_ = 0;  // results taken at its start
  std::size_t chunk_ = 0;         // the decision of the last interval
  bool fixed_ = false;            // chunk_ never changes
};

}  // namespace procpool::tool
