// Small header-only statistics and reporting helpers shared by the benchmark binaries.
//
// Every benchmark figure is reported as one line on stdout,
//   WORKLOAD IMPL FIGURE VALUE UNIT (min X, max Y, n=N)
// so that scripts can grep and compare runs without parsing anything fancier.
#pragma once

#include <time.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace procpool::bench {

// Nearest-rank percentile: sort ascending and return sample number ceil(q * n) (1-based).
// Unlike interpolating definitions, the result is always an observed sample, which is what
// a latency percentile should be. q must be in (0, 1]; samples must be non-empty.
inline double percentile_nearest_rank(std::vector<double> samples, double q) {
  if (samples.empty()) {
    std::fprintf(stderr, "procpool bench: percentile_nearest_rank of an empty sample set\n");
    std::abort();
  }
  if (!(q > 0.0 && q <= 1.0)) {
    std::fprintf(stderr, "procpool bench: percentile_nearest_rank: q=%g not in (0,1]\n", q);
    std::abort();
  }
  std::sort(samples.begin(), samples.end());
  const double n = static_cast<double>(samples.size());
  // q * n is computed in binary floating point, so 0.99 * 20000 may come out a hair above
  // 19800; the small tolerance keeps ceil() from skipping to the next rank in that case.
  double rank = std::ceil(q * n - 1e-9);
  rank = std::clamp(rank, 1.0, n);
  return samples[static_cast<std::size_t>(rank) - 1];
}

// Conventional median: the middle sample for odd n, the mean of the two middle ones for even n.
inline double median(std::vector<double> samples) {
  if (samples.empty()) {
    std::fprintf(stderr, "procpool bench: median of an empty sample set\n");
    std::abort();
  }
  std::sort(samples.begin(), samples.end());
  const std::size_t n = samples.size();
  if (n % 2 == 1) return samples[n / 2];
  return (samples[n / 2 - 1] + samples[n / 2]) / 2.0;
}

struct Spread {
  double median;
  double min;
  double max;
};

inline Spread spread(std::vector<double> samples) {
  if (samples.empty()) {
    std::fprintf(stderr, "procpool bench: spread of an empty sample set\n");
    std::abort();
  }
  const auto [lo, hi] = std::minmax_element(samples.begin(), samples.end());
  const double mn = *lo;
  const double mx = *hi;
  return Spread{median(std::move(samples)), mn, mx};
}

// Formats like %.3g (three significant digits, trailing zeros dropped) but never uses
// scientific notation: throughput figures such as 254000000 must stay greppable/comparable
// as plain numbers, and sub-microsecond latencies such as 0.0912 keep their precision.
inline std::string format_value(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  if (v == 0.0) return "0";
  const double mag = std::fabs(v);
  int exp10 = static_cast<int>(std::floor(std::log10(mag)));
  const double scale = std::pow(10.0, exp10 - 2);
  const double rounded = std::round(mag / scale) * scale;
  // Rounding to three digits can carry into the next decade (999.7 -> 1000, 0.09996 -> 0.1).
  if (rounded >= std::pow(10.0, exp10 + 1)) ++exp10;
  // Large enough for "%.0f" of DBL_MAX (309 digits) or "%.*f" down to the smallest denormal.
  char buf[400];
  if (exp10 >= 2) {
    std::snprintf(buf, sizeof buf, "%.0f", std::copysign(rounded, v));
    return buf;
  }
  const int decimals = 2 - exp10;
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  std::string out = buf;
  // decimals > 0 here, so the string has a '.', and stripping zeros cannot eat integer digits.
  while (!out.empty() && out.back() == '0') out.pop_back();
  if (!out.empty() && out.back() == '.') out.pop_back();
  if (out == "-0") out = "0";
  return out;
}

// Prints exactly one line, e.g. "L1 raw-ring p50 0.09 us (min 0.08, max 0.11, n=3)", and
// flushes so that partial results survive if a later benchmark crashes or is killed.
// `n` is the number of repetitions the spread summarises (three by project convention).
inline void print_figure(std::string_view workload, std::string_view impl, std::string_view figure,
                         const Spread& s, std::string_view unit, std::size_t n = 3) {
  const std::string value = format_value(s.median);
  const std::string mn = format_value(s.min);
  const std::string mx = format_value(s.max);
  std::printf("%.*s %.*s %.*s %s %.*s (min %s, max %s, n=%zu)\n", static_cast<int>(workload.size()),
              workload.data(), static_cast<int>(impl.size()), impl.data(),
              static_cast<int>(figure.size()), figure.data(), value.c_str(),
              static_cast<int>(unit.size()), unit.data(), mn.c_str(), mx.c_str(), n);
  std::fflush(stdout);
}

// Monotonic nanoseconds; CLOCK_MONOTONIC is not affected by wall-clock adjustments and is
// served from the vDSO, so it is cheap enough to bracket individual round trips.
inline std::uint64_t now_ns() {
  timespec ts;
  if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) {
    std::fprintf(stderr, "procpool bench: clock_gettime(CLOCK_MONOTONIC): %s\n",
                 std::strerror(errno));
    std::abort();
  }
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ull +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

// Spin-wait hint: PAUSE tells the core we are in a spin loop, which avoids the memory-order
// mis-speculation flush when the awaited line changes and yields resources to the SMT sibling.
inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

}  // namespace procpool::bench
