// `procpool map` results: order, empty and unterminated lines, worker arguments, and the
// memory that results waiting behind a slow line may hold.

#include <string>  // inputs and outputs
#include <vector>  // arguments

#include <gtest/gtest.h>

#include "map_run_harness.hpp"

namespace procpool::map_test {
namespace {

// --- results ---

TEST_F(MapTest, KeepsInputOrderFor100000Lines) {
  const Result run =
      run_procpool({"map", "--workers", "2", "--", worker("increment")}, numbers(0, 99'999));
  EXPECT_EXIT_CODE(run, 0);
  EXPECT_TRUE(run.out == numbers(1, 100'000)) << "output differs (" << run.out.size() << " bytes)";
  EXPECT_EQ(run.err, "");
}

TEST_F(MapTest, UnorderedWritesTheSameResultsInSomeOrder) {
  const Result run = run_procpool(
      {"map", "--workers", "2", "--unordered", "--", worker("increment")}, numbers(0, 99'999));
  EXPECT_EXIT_CODE(run, 0);
  EXPECT_TRUE(sorted_lines(run.out) == sorted_lines(numbers(1, 100'000)));
}

TEST_F(MapTest, ProcessesALastLineWithoutNewline) {
  const Result run = run_procpool({"map", "--", worker("increment")}, "1\n2\n41");
  EXPECT_EXIT_CODE(run, 0);
  EXPECT_EQ(run.out, "2\n3\n42\n");
}

// A result is written while the input is still open: output is not held back until more
// input or the end of input arrives.
TEST_F(MapTest, WritesResultsBeforeTheInputEnds) {
  RunOptions options;
  options.hold_stdin_until_output = "2\n3\n";
  options.deadline = 20s;
  const Result run = run_procpool({"map", "--", worker("increment")}, "1\n2\n", options);
  EXPECT_EXIT_CODE(run, 0);
  EXPECT_EQ(run.out, "2\n3\n");
}

TEST_F(MapTest, EmptyInputGivesEmptyOutputAndSuccess) {
  const Result run = run_procpool({"map", "--", worker("increment")}, "");
  EXPECT_EXIT_CODE(run, 0);
  EXPECT_EQ(run.out, "");
  EXPECT_EQ(run.err, "");
}

TEST_F(MapTest, EmptyLinesAreTasksToo) {
  const Result run = run_procpool({"map", "--handler", "echo", "--", worker("crashy")}, "a\n\nb\n");
  EXPECT_EXIT_CODE(run, 0);
  EXPECT_EQ(run.out, "a\n\nb\n");
}

TEST_F(MapTest, PassesWorkerArguments) {
  // crashy reads its own argv: this one exits before READY, so the pool cannot start.
  const Result run =
      run_procpool({"map", "--", worker("crashy"), "--exit-before-ready", "3"}, "1\n");
  EXPECT_EXIT_CODE(run, 2);
  EXPECT_NE(run.err.find("exit code 3"), std::string::npos) << run.err;
  EXPECT_EQ(run.out, "");
}

// What a worker prints on its stdout goes to map's stderr, never into the results. (The input
// lines reach the worker without their newline, so the two prints make one unfinished line,
// delivered when the worker exits.)
TEST_F(MapTest, WhatAWorkerPrintsGoesToStderrNotIntoTheResults) {
  const Result run = run_procpool(
      {"map", "--workers", "1", "--handler", "stdout", "--", worker("crashy")}, "a\nb\n");
  EXPECT_EXIT_CODE(run, 0);
  EXPECT_EQ(run.out, "ok\nok\n");
  EXPECT_EQ(run.err, "ab\n");
}

// Ordered output behind one slow line (3 s): the 1 MiB results of the 700 lines after it wait
// for it. What piles up must stay within map's pending-results budget (256 MiB), not grow with
// the input. Sanitizer runtimes hold freed memory back (quarantine, shadow), so the peak says
// nothing about map there.
TEST_F(MapTest, ResultsWaitingBehindASlowLineStayWithinTheBudget) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "the peak RSS under a sanitizer is the runtime's";
#endif
  constexpr std::size_t kResult = 1 << 20;
  constexpr std::size_t kLines = 700;
  RunOptions options;
  options.keep_stdout = false;
  const Result run =
      run_procpool({"map", "--workers", "2", "--handler", "fill", "--", worker("crashy")},
                   "1048576 3000\n" + repeat_line("1048576", kLines), options);
  EXPECT_EXIT_CODE(run, 0);
  EXPECT_EQ(run.out_bytes, (kLines + 1) * (kResult + 1));
  // The budget, and room for the program itself and one batch of results in transit.
  EXPECT_LT(run.max_rss_kb, (256 + 96) * 1024) << "peak RSS " << run.max_rss_kb / 1024 << " MiB";
}

}  // namespace
}  // namespace procpool::map_test
