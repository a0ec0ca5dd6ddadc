// LatencyHistogram: percentiles against a sorted reference (nearest rank, never below it, at
// most one bucket above it, never above the maximum), and the edges: no sample, one sample,
// values below 1 us, and values past the top of the scale.

#include "latency_histogram.hpp"

#include <gtest/gtest.h>

#include <algorithm>  // std::sort
#include <cmath>      // std::ceil, std::pow
#include <limits>     // quiet_NaN
#include <random>     // std::mt19937_64
#include <vector>     // the reference samples

namespace procpool::detail {
namespace {

// The nearest-rank percentile of sorted samples: the smallest value with at least q of them at
// or below it.
double reference(const std::vector<double>& sorted, double q) {
  const auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(sorted.size())));
  return sorted[std::max<std::size_t>(rank, 1) - 1];
}

// A bucket spans 1/16 of its octave, so its upper bound is within 1/16 above any value in it;
// everything under 1 us shares the bucket [0, 1), and everything from the top of the scale up
// the overflow bucket, which only the maximum bounds.
void expect_close(double got, double want, double max, const char* what) {
  EXPECT_GE(got, want) << what;
  EXPECT_LE(got, max) << what;
  if (want >= std::ldexp(1.0, 36)) return;
  if (want >= 1.0) {
    EXPECT_LE(got, want * (1.0 + 1.0 / 16)) << what << ": want " << want;
  } else {
    EXPECT_LE(got, 1.0) << what << ": want " << want;
  }
}

void check_against_reference(std::vector<double> samples) {
  LatencyHistogram histogram;
  for (double s : samples) histogram.record(s);
  std::sort(samples.begin(), samples.end());
  const LatencySummary summary = histogram.summary();
  ASSERT_EQ(summary.count, samples.size());
  EXPECT_EQ(summary.max_us, samples.back());
  expect_close(summary.p50_us, reference(samples, 0.50), samples.back(), "p50");
  expect_close(summary.p90_us, reference(samples, 0.90), samples.back(), "p90");
  expect_close(summary.p99_us, reference(samples, 0.99), samples.back(), "p99");
}

TEST(LatencyHistogram, EmptyIsAllZero) {
  const LatencySummary summary = LatencyHistogram().summary();
  EXPECT_EQ(summary.count, 0U);
  EXPECT_EQ(summary.max_us, 0.0);
  EXPECT_EQ(summary.p50_us, 0.0);
  EXPECT_EQ(summary.p90_us, 0.0);
  EXPECT_EQ(summary.p99_us, 0.0);
}

// The histogram's cumulative counts and sum (Prometheus' _bucket{le} and _sum): a sample
// counts at the first bound its log-scale bucket lies wholly below.
TEST(LatencyHistogram, CumulativeCountsAndSum) {
  LatencyHistogram histogram;
  histogram.record(5);
  histogram.record(100, 2);  // its bucket ends at 104 us: counted at 250, not at 100
  histogram.record(1e6);
  const LatencySummary summary = histogram.summary();
  const auto& bounds = LatencySummary::kBoundsUs;
  const auto at = [&](double bound) {
    const auto it = std::find(bounds.begin(), bounds.end(), bound);
    return summary.cumulative[static_cast<std::size_t>(it - bounds.begin())];
  };
  EXPECT_EQ(at(10), 1U);
  EXPECT_EQ(at(100), 1U);
  EXPECT_EQ(at(250), 3U);
  EXPECT_EQ(at(5e5), 3U);
  EXPECT_EQ(at(6e7), 4U);
  EXPECT_EQ(summary.sum_us, 5 + 200 + 1e6);
}

TEST(LatencyHistogram, OneSampleIsEveryPercentile) {
  for (double value : {0.25, 1.0, 3.7, 1000.0, 123456.789}) {
    LatencyHistogram histogram;
    histogram.record(value);
    const LatencySummary summary = histogram.summary();
    EXPECT_EQ(summary.count, 1U);
    EXPECT_EQ(summary.max_us, value);
    EXPECT_EQ(summary.p50_us, value) << value;
    EXPECT_EQ(summary.p90_us, value) << value;
    EXPECT_EQ(summary.p99_us, value) << value;
  }
}

// Log-uniform from 0.1 us to 10 s: every octave of the scale, many samples per bucket.
TEST(LatencyHistogram, PercentilesMatchASortedReferenceAcrossTheScale) {
  std::mt19937_64 rng(20240611);
  std::uniform_real_distribution<double> exponent(-1.0, 7.0);
  for (std::size_t count : {2U, 10U, 99U, 1000U, 100'000U}) {
    std::vector<double> samples;
    for (std::size_t i = 0; i < count; ++i) samples.push_back(std::pow(10.0, exponent(rng)));
    SCOPED_TRACE(count);
    check_against_reference(std::move(samples));
  }
}

// Bucket edges: exact powers of two and the values just below them.
TEST(LatencyHistogram, PercentilesMatchAtBucketEdges) {
  std::vector<double> samples;
  for (int octave = 0; octave < 30; ++octave) {
    const double edge = std::ldexp(1.0, octave);
    samples.push_back(edge);
    samples.push_back(std::nextafter(edge, 0.0));
    samples.push_back(edge * (1.0 + 1.0 / 16));
  }
  check_against_reference(samples);
}

// A skewed distribution: the tail percentiles land on the few slow samples.
TEST(LatencyHistogram, TailPercentilesFindTheSlowFew) {
  std::vector<double> samples(980, 10.0);
  for (int i = 0; i < 20; ++i) samples.push_back(50'000.0 + i);
  check_against_reference(samples);
  LatencyHistogram histogram;
  for (double s : samples) histogram.record(s);
  EXPECT_LT(histogram.summary().p90_us, 11.0);
  EXPECT_GE(histogram.summary().p99_us, 50'000.0);
}

// Past the top of the scale (2^36 us, about 19 hours) the bucket has no upper bound: the
// percentile is the maximum, never a value below the samples it stands for.
TEST(LatencyHistogram, ValuesPastTheTopOfTheScaleAreNotUnderstated) {
  const double huge = std::ldexp(1.0, 40);
  check_against_reference({huge});
  check_against_reference({huge, huge * 2, huge * 4});
  check_against_reference({10.0, std::ldexp(1.0, 36), 1e300});
  LatencyHistogram histogram;
  histogram.record(huge);
  EXPECT_EQ(histogram.summary().p50_us, huge);
}

// Below 1 us, zero, negative (a clock step) and NaN all count, in the lowest bucket; nothing is
// reported above 1 us for them.
TEST(LatencyHistogram, TinyZeroNegativeAndNanSamplesCountInTheLowestBucket) {
  check_against_reference({0.0, 0.001, 0.5, 0.999});
  LatencyHistogram histogram;
  histogram.record(-5.0);
  histogram.record(std::numeric_limits<double>::quiet_NaN());
  histogram.record(0.0);
  const LatencySummary summary = histogram.summary();
  EXPECT_EQ(summary.count, 3U);
  EXPECT_EQ(summary.max_us, 0.0);
  EXPECT_EQ(summary.p50_us, 0.0);
  EXPECT_EQ(summary.p99_us, 0.0);
}

}  // namespace
}  // namespace procpool::detail
