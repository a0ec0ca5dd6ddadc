// `procpool map --progress` with workers that stream progress (Task::emit): the progress line
// shows the latest report and the line it came from, made printable; results are unchanged.

#include <string>  // inputs and outputs

#include <gtest/gtest.h>

#include "map_run_harness.hpp"

namespace procpool::map_test {
namespace {

// The progress example worker's report_then_sleep emits the text after the line's first word,
// then sleeps that many milliseconds. The progress line is redrawn every 200 ms, so a report
// that stays current for 1.5 s is on at least one redraw (seven, on a machine that keeps up).
TEST_F(MapTest, TheProgressLineShowsWhatARunningLinesHandlerReported) {
  const Result run = run_procpool({"map", "--workers", "1", "--progress", "--handler",
                                   "report_then_sleep", "--", worker("progress")},
                                  "1500 parsing\tpart 1\n1 done\n");
  EXPECT_EXIT_CODE(run, 0);
  EXPECT_EQ(run.out, "slept\nslept\n");
  EXPECT_NE(run.err.find(", line 1: parsing?part 1"), std::string::npos) << run.err;
}

// Without --progress nothing is shown, and the handler's reports are not even sent.
TEST_F(MapTest, WithoutProgressTheReportsAreNotShown) {
  const Result run = run_procpool(
      {"map", "--workers", "1", "--no-progress", "--handler", "streams", "--", worker("progress")},
      "a\nb\n");
  EXPECT_EXIT_CODE(run, 0);
  EXPECT_EQ(run.out, "no\nno\n");
  EXPECT_EQ(run.err, "");
}

}  // namespace
}  // namespace procpool::map_test
