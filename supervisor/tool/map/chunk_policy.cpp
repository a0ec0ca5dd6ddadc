#include "map/chunk_policy.hpp"

#include <charconv>     // std::from_chars
#include <cstdlib>      // std::getenv
#include <string_view>  // the variable's value

namespace procpool::tool {

ChunkPolicy::ChunkPolicy(unsigned workers, std::size_t max_chunk, Clock::time_point start,
                         std::optional<std::size_t> fixed)
    : workers_(workers == 0 ? 1 : workers), max_chunk_(max_chunk), mark_(start) {
  if (fixed) {
    fixed_ = true;
    chunk_ = *fixed < max_chunk_ ? *fixed : max_chunk_;
  }
}

std::optional<std::size_t> ChunkPolicy::fixed_from_environment() {
  const char* value = std::getenv("PROCPOOL_MAP_CHUNK_LINES");
  if (value == nullptr) return std::nullopt;
  const std::string_view text(value);
  std::size_t lines = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), lines);
  if (error != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return lines;
}

std::size_t ChunkPolicy::chunk_lines(Clock::time_point now, std::uint64_t taken) {
  const auto elapsed = now - mark_;
  if (fixed_ || elapsed < kChunkSampleInterval) return chunk_;
  const std::uint64_t lines = taken - mark_taken_;
  mark_ = now;
  mark_taken_ = taken;
  chunk_ = 0;
  if (lines == 0) return chunk_;
  // Lines one worker runs in kChunkRunTime at the rate of this interval.
  const auto per_worker = std::chrono::duration<double>(elapsed).count() * workers_;
  const double fit = static_cast<double>(lines) *
                     std::chrono::duration<double>(kChunkRunTime).count() / per_worker;
  if (fit >= static_cast<double>(kMinChunkLines)) {
    chunk_ = fit >= static_cast<double>(max_chunk_) ? max_chunk_ : static_cast<std::size_t>(fit);
  }
  return chunk_;
}

}  // namespace procpool::tool
