#pragma once
#include <algorithm>  // std::clamp
#include <chrono>     // durations
#include <cstdint>    // std::int64_t

namespace procpool::detail {

// The adaptive pipeline (PoolOptions::pipeline_depth 0), as pure arithmetic: a worker's time per
// task is an EWMA (1/16) of the time it was busy per answer, and its depth keeps about
// kPipelineWork of work queued behind the task it runs.
struct AdaptiveDepth {
  static constexpr std::chrono::nanoseconds kPipelineWork = std::chrono::microseconds(1000);
  // Tasks at least this long keep at most 2 on board: one running, one queued to hide the
  // dispatch round trip. More would only leave one worker idle at the end of a batch while
  // another still has tasks queued.
  static constexpr std::chrono::nanoseconds kLongTask = std::chrono::microseconds(200);
  static constexpr std::int64_t kMaxDepth = 1024;
  // Before the first answer: a first task may be long, and nothing should wait behind it.
  static constexpr unsigned kUnmeasured = 1;

  // The new service-time estimate after a busy interval of `sample_ns` (0 = not measured yet).
  static constexpr std::int64_t next_service_ns(std::int64_t service_ns,
                                                std::int64_t sample_ns) noexcept {
    if (sample_ns < 1) sample_ns = 1;
    return service_ns == 0 ? sample_ns : service_ns + (sample_ns - service_ns) / 16;
  }

  // The depth for a measured service time.
  static constexpr unsigned depth(std::int64_t service_ns) noexcept {
    if (service_ns <= 0) return kUnmeasured;
    const std::int64_t queued = kPipelineWork.count() / service_ns;
    const std::int64_t most = service_ns >= kLongTask.count() ? 2 : kMaxDepth;
    return static_cast<unsigned>(std::clamp<std::int64_t>(1 + queued, 1, most));
  }
};

}  // namespace procpool::detail
