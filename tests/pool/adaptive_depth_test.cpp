// AdaptiveDepth (supervisor/pool/adaptive_depth.hpp): the EWMA of the service time and the depth
// it gives.

#include "adaptive_depth.hpp"

#include <gtest/gtest.h>

namespace procpool::detail {
namespace {

TEST(AdaptiveDepth, UnmeasuredWorkerTakesOneTask) {
  EXPECT_EQ(AdaptiveDepth::depth(0), 1u);
  EXPECT_EQ(AdaptiveDepth::depth(-5), 1u);
}

TEST(AdaptiveDepth, DepthKeepsAboutAMillisecondQueuedBehindTheRunningTask) {
  EXPECT_EQ(AdaptiveDepth::depth(100'000), 1u + 10u);  // 100 us tasks: 10 queued
  EXPECT_EQ(AdaptiveDepth::depth(199'999), 1u + 5u);
  EXPECT_EQ(AdaptiveDepth::depth(10'000), 1u + 100u);
  EXPECT_EQ(AdaptiveDepth::depth(1), 1024u);  // capped
  EXPECT_EQ(AdaptiveDepth::depth(500), 1024u);
}

TEST(AdaptiveDepth, LongTasksKeepAtMostTwoOnBoardAndOneAboveAMillisecond) {
  EXPECT_EQ(AdaptiveDepth::depth(200'000), 2u);
  EXPECT_EQ(AdaptiveDepth::depth(900'000), 2u);
  EXPECT_EQ(AdaptiveDepth::depth(1'000'001), 1u);
  EXPECT_EQ(AdaptiveDepth::depth(50'000'000), 1u);
}

TEST(AdaptiveDepth, ServiceTimeIsAnEwmaWithWeightOneSixteenth) {
  EXPECT_EQ(AdaptiveDepth::next_service_ns(0, 1000), 1000);  // the first sample is taken as is
  EXPECT_EQ(AdaptiveDepth::next_service_ns(0, 0), 1);        // never zero once measured
  EXPECT_EQ(AdaptiveDepth::next_service_ns(1000, 2600), 1100);
  EXPECT_EQ(AdaptiveDepth::next_service_ns(1000, -5), 1000 + (1 - 1000) / 16);
  std::int64_t s = 1000;
  for (int i = 0; i < 200; ++i) s = AdaptiveDepth::next_service_ns(s, 5'000'000);
  EXPECT_GT(s, 4'900'000);  // converges to a sustained sample
}

}  // namespace
}  // namespace procpool::detail
