// line_ranges: the "not completed" list of an interrupted run, which a user re-runs from.

#include "map/line_ranges.hpp"

#include <gtest/gtest.h>

namespace {

using procpool::tool::kNoLine;
using procpool::tool::line_ranges;

TEST(LineRanges, CountsFromOne) {
  EXPECT_EQ(line_ranges({0}, kNoLine), "line 1");
  EXPECT_EQ(line_ranges({6}, kNoLine), "line 7");
}

TEST(LineRanges, MergesConsecutiveLines) {
  EXPECT_EQ(line_ranges({2, 3, 4, 8}, kNoLine), "lines 3-5, 9");
  EXPECT_EQ(line_ranges({0, 1}, kNoLine), "lines 1-2");
  EXPECT_EQ(line_ranges({0, 2, 4}, kNoLine), "lines 1, 3, 5");
}

TEST(LineRanges, ADuplicateLineIsNamedOnce) {
  EXPECT_EQ(line_ranges({2, 2, 3}, kNoLine), "lines 3-4");
}

TEST(LineRanges, AnOpenEndStandsForEveryLineAfter) {
  EXPECT_EQ(line_ranges({}, 14), "lines 15-");
  EXPECT_EQ(line_ranges({6}, 14), "lines 7, 15-");
  EXPECT_EQ(line_ranges({2, 3, 4, 8, 11}, 14), "lines 3-5, 9, 12, 15-");
}

TEST(LineRanges, ARangeEndingJustBeforeTheOpenEndMergesWithIt) {
  EXPECT_EQ(line_ranges({12, 13}, 14), "lines 13-");
  EXPECT_EQ(line_ranges({13}, 14), "lines 14-");
  EXPECT_EQ(line_ranges({2, 13}, 14), "lines 3, 14-");
}

TEST(LineRanges, LargeLineNumbers) {
  EXPECT_EQ(line_ranges({999'999'999, 1'000'000'000}, kNoLine), "lines 1000000000-1000000001");
}

}  // namespace
