#pragma once

#include <array>    // buckets
#include <bit>      // std::bit_width
#include <cmath>    // std::log2, std::pow
#include <cstdint>  // std::uint64_t
#include <limits>   // infinity

#include "procpool/metrics.hpp"

namespace procpool::detail {

// Latencies in a fixed log-scale histogram: 16 buckets per power of two from 1 us to 2^36 us,
// so recording allocates nothing and percentiles are within ~6% (reported as bucket upper
// bounds, never above the largest sample). Values from 2^36 us up share an overflow bucket with
// no upper bound, reported as the largest sample, so they are never understated.
class LatencyHistogram {
 public:
  void record(double microseconds, std::uint64_t times = 1) {
    count_ += times;
    sum_ += microseconds * static_cast<double>(times);
    if (microseconds > max_) max_ = microseconds;
    buckets_[bucket(microseconds)] += times;
  }

  LatencySummary summary() const {
    LatencySummary s;
    s.count = count_;
    s.max_us = max_;
    s.sum_us = sum_;
    if (count_ == 0) return s;
    std::uint64_t seen = 0;
    std::size_t b = 0;
    for (std::size_t i = 0; i < LatencySummary::kBoundsUs.size(); ++i) {
      while (b < kBuckets && upper_bound(b) <= LatencySummary::kBoundsUs[i]) seen += buckets_[b++];
      s.cumulative[i] = seen;
    }
    s.p50_us = percentile(0.50);
    s.p90_us = percentile(0.90);
    s.p99_us = percentile(0.99);
    return s;
  }

 private:
  static constexpr std::uint64_t kPerOctave = 16;
  static constexpr std::uint64_t kOctaves = 36;
  static constexpr std::size_t kBuckets = kPerOctave * kOctaves + 2;  // + under 1 us, + overflow

  // Integer arithmetic only (this runs twice per task): v = latency in 1/16 us; bucket 0 holds
  // everything under 1 us; above, 16 buckets per power of two, by the 4 bits after the top one.
  static std::size_t bucket(double us) {
    if (!(us >= 1.0)) return 0;
    const double scaled = us * static_cast<double>(kPerOctave);
    if (scaled >= 0x1p60) return kBuckets - 1;
    const auto v = static_cast<std::uint64_t>(scaled);
    const auto width = static_cast<std::uint64_t>(std::bit_width(v));  // >= 5
    const std::uint64_t octave = width - 5;
    const std::uint64_t sub = (v >> (width - 5)) & (kPerOctave - 1);
    const std::uint64_t index = 1 + octave * kPerOctave + sub;
    return index >= kBuckets ? kBuckets - 1 : static_cast<std::size_t>(index);
  }
  static double upper_bound(std::size_t bucket) {
    if (bucket == 0) return 1.0;
    if (bucket == kBuckets - 1) return std::numeric_limits<double>::infinity();
    const std::uint64_t octave = (bucket - 1) / kPerOctave;
    const std::uint64_t sub = (bucket - 1) % kPerOctave;
    return std::ldexp(static_cast<double>(kPerOctave + sub + 1), static_cast<int>(octave)) /
           static_cast<double>(kPerOctave);
  }
  // Nearest rank, reported as the bucket's upper bound (never above the maximum seen).
  double percentile(double q) const {
    const auto rank = static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(count_)));
    std::uint64_t seen = 0;
    for (std::size_t b = 0; b < kBuckets; ++b) {
      seen += buckets_[b];
      if (seen >= rank) return upper_bound(b) < max_ ? upper_bound(b) : max_;
    }
    return max_;
  }

  std::array<std::uint64_t, kBuckets> buckets_{};
  std::uint64_t count_ = 0;
  double sum_ = 0;
  double max_ = 0;
};

}  // namespace procpool::detail
