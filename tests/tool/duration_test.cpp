// parse_duration and duration_text: the durations of --timeout and --grace, and of messages.

#include "common/duration.hpp"

#include <gtest/gtest.h>

namespace {

using procpool::tool::duration_text;
using procpool::tool::parse_duration;
using std::chrono::milliseconds;

TEST(ParseDuration, ReadsEachUnit) {
  EXPECT_EQ(parse_duration("500ms"), milliseconds(500));
  EXPECT_EQ(parse_duration("2s"), milliseconds(2000));
  EXPECT_EQ(parse_duration("1m"), milliseconds(60'000));
  EXPECT_EQ(parse_duration("1h"), milliseconds(3'600'000));
  EXPECT_EQ(parse_duration("1.5m"), milliseconds(90'000));
}

TEST(ParseDuration, APlainNumberIsSeconds) {
  EXPECT_EQ(parse_duration("3"), milliseconds(3000));
  EXPECT_EQ(parse_duration("0.5"), milliseconds(500));
  EXPECT_EQ(parse_duration("0"), milliseconds(0));
  EXPECT_EQ(parse_duration("0ms"), milliseconds(0));
}

// 0 means "no limit": a positive duration never becomes it.
TEST(ParseDuration, APositiveDurationBelowAMillisecondRoundsUp) {
  EXPECT_EQ(parse_duration("0.0001"), milliseconds(1));
  EXPECT_EQ(parse_duration("0.2ms"), milliseconds(1));
  EXPECT_EQ(parse_duration("1.2ms"), milliseconds(2));
}

TEST(ParseDuration, RefusesWhatIsNoDuration) {
  for (const char* text : {"", "ms", "s", ".", "-2s", "+2s", "5x", "2 s", "2S", "1e3", "1.2.3",
                           "2sms", " 2s", "0x10"}) {
    EXPECT_EQ(parse_duration(text), std::nullopt) << "'" << text << "'";
  }
}

TEST(ParseDuration, RefusesMoreThanAbout115Days) {
  EXPECT_EQ(parse_duration("10000000s"), milliseconds(10'000'000'000));
  EXPECT_EQ(parse_duration("10000001s"), std::nullopt);
  EXPECT_EQ(parse_duration("99999999999999999999h"), std::nullopt);
}

TEST(DurationText, PicksMillisecondsOrSeconds) {
  EXPECT_EQ(duration_text(milliseconds(0)), "0 ms");
  EXPECT_EQ(duration_text(milliseconds(250)), "250 ms");
  EXPECT_EQ(duration_text(milliseconds(999)), "999 ms");
  EXPECT_EQ(duration_text(milliseconds(1000)), "1 s");
  EXPECT_EQ(duration_text(milliseconds(30'000)), "30 s");
  EXPECT_EQ(duration_text(milliseconds(1500)), "1.5 s");
  EXPECT_EQ(duration_text(milliseconds(1234)), "1.234 s");
  EXPECT_EQ(duration_text(milliseconds(61'050)), "61.05 s");
}

}  // namespace
