// ChunkPolicy: when `procpool map` packs lines in chunks, from the rate results come out at.
// The clock is given, never read: the intervals here are made up.

#include "map/chunk_policy.hpp"

#include <gtest/gtest.h>

namespace {

using procpool::tool::ChunkPolicy;
using procpool::tool::kChunkSampleInterval;
using procpool::tool::kMinChunkLines;
using std::chrono::milliseconds;

const ChunkPolicy::Clock::time_point kStart{};

TEST(ChunkPolicy, OneTaskPerLineUntilAnIntervalIsMeasured) {
  ChunkPolicy policy(2, 512, kStart, std::nullopt);
  EXPECT_EQ(policy.chunk_lines(kStart, 0), 0u);
  EXPECT_EQ(policy.chunk_lines(kStart + kChunkSampleInterval / 2, 100'000), 0u);
}

// 10,000 results in 10 ms on 2 workers: 5,000 lines per worker in 10 ms, 500 in 1 ms.
TEST(ChunkPolicy, FastLinesGoInChunksThatRunAboutAMillisecond) {
  ChunkPolicy policy(2, 512, kStart, std::nullopt);
  EXPECT_EQ(policy.chunk_lines(kStart + milliseconds(10), 10'000), 500u);
  // Inside the next interval the decision stands, whatever came out meanwhile.
  EXPECT_EQ(policy.chunk_lines(kStart + milliseconds(15), 10'001), 500u);
}

TEST(ChunkPolicy, ChunksAreAtMostABatch) {
  ChunkPolicy policy(2, 512, kStart, std::nullopt);
  EXPECT_EQ(policy.chunk_lines(kStart + milliseconds(10), 1'000'000), 512u);
}

TEST(ChunkPolicy, SlowLinesGoOnePerTask) {
  ChunkPolicy policy(2, 512, kStart, std::nullopt);
  // 1 ms of one worker holds fewer than kMinChunkLines lines.
  const std::uint64_t slow = 2 * 10 * (kMinChunkLines - 1);
  EXPECT_EQ(policy.chunk_lines(kStart + milliseconds(10), slow), 0u);
}

TEST(ChunkPolicy, AnIntervalWithoutResultsGoesBackToOneTaskPerLine) {
  ChunkPolicy policy(1, 512, kStart, std::nullopt);
  EXPECT_EQ(policy.chunk_lines(kStart + milliseconds(10), 100'000), 512u);
  EXPECT_EQ(policy.chunk_lines(kStart + milliseconds(20), 100'000), 0u);
  EXPECT_EQ(policy.chunk_lines(kStart + milliseconds(30), 200'000), 512u);
}

TEST(ChunkPolicy, AFixedSizeMeasuresNothing) {
  ChunkPolicy fixed(2, 512, kStart, 64);
  EXPECT_EQ(fixed.chunk_lines(kStart, 0), 64u);
  EXPECT_EQ(fixed.chunk_lines(kStart + milliseconds(10), 0), 64u);
  ChunkPolicy capped(2, 512, kStart, 100'000);
  EXPECT_EQ(capped.chunk_lines(kStart, 0), 512u);
  ChunkPolicy never(2, 512, kStart, 0);
  EXPECT_EQ(never.chunk_lines(kStart + milliseconds(10), 1'000'000), 0u);
}

}  // namespace
