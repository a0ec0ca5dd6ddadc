// `procpool map` interrupted by SIGINT or SIGTERM (graceful, then at once), and the crash report
// of a worker that dies under its task.

#include <signal.h>  // SIGINT, SIGTERM

#include <chrono>  // grace periods
#include <string>  // inputs and outputs
#include <vector>  // arguments

#include <gtest/gtest.h>

#include "map_run_harness.hpp"

namespace procpool::map_test {
namespace {

// --- interruption (SIGINT, SIGTERM) and crash reports ---

// The checks every interrupted sleep run shares: the exit status, prompt, every result written
// is right, the report accounts for every line read (`lines` of them, stdin still open), and
// the notice and the report each start a line.
void expect_interrupted_sleep_run(const Result& run, int status, const std::string& name,
                                  std::size_t lines) {
  EXPECT_EXIT_CODE(run, status);
  const std::vector<std::string> results = lines_of(run.out);
  for (const std::string& result : results) EXPECT_EQ(result, "slept");
  EXPECT_NE(run.err.find("procpool map: " + name + " received"), std::string::npos) << run.err;
  EXPECT_NE(run.err.find("procpool map: interrupted by " + name), std::string::npos) << run.err;
  EXPECT_NE(run.err.find(": " + std::to_string(results.size()) + " results written, 0 failed, "),
            std::string::npos)
      << run.err;
  const std::size_t not_completed = lines - results.size();
  EXPECT_NE(run.err.find(std::to_string(not_completed) + (not_completed == 1 ? " line" : " lines") +
                         " not completed\n"),
            std::string::npos)
      << run.err;
  // Every line read has its result written or is named; with stdin still open, more lines may
  // follow, so the list ends with "N-" (which may take in the last lines read).
  const NotCompleted missing = parse_not_completed(run.err);
  ASSERT_TRUE(missing.reported) << run.err;
  ASSERT_GE(missing.rest_from, 1u) << run.err;
  ASSERT_LE(missing.rest_from, lines + 1) << run.err;
  for (const std::uint64_t line : missing.lines) EXPECT_LT(line, missing.rest_from) << run.err;
  EXPECT_EQ(results.size() + missing.lines.size() + (lines + 1 - missing.rest_from), lines)
      << run.err;
  for (const char* message : {"procpool map: interrupted", "procpool map: not completed",
                              "procpool map: SIGINT", "procpool map: SIGTERM"}) {
    expect_messages_start_lines(run.err, message);
  }
}

TEST_F(MapTest, SigintStopsReadingFinishesRunningTasksAndExits130) {
  RunOptions options;
  options.keep_stdin_open = true;
  options.signals = {{SIGINT, 2, ""}};
  const Result run =
      run_procpool(sleep_run({}), repeat_line("1", 2) + repeat_line("200", 40), options);
  ASSERT_EQ(run.signals_sent, 1u) << run.err;
  expect_interrupted_sleep_run(run, 130, "SIGINT", 42);
  // The running tasks take 200 ms; the 30 s default grace is not waited out.
  EXPECT_LT(run.exit_after_signal, 10s) << run.err;
  EXPECT_GE(lines_of(run.out).size(), 4u)
      << "the tasks running at the signal finished: " << run.err;
}

TEST_F(MapTest, SigtermExits143AndEndsTheProgressLine) {
  RunOptions options;
  options.keep_stdin_open = true;
  options.signals = {{SIGTERM, 2, ""}};
  const Result run = run_procpool(sleep_run({"--progress"}),
                                  repeat_line("1", 2) + repeat_line("200", 40), options);
  ASSERT_EQ(run.signals_sent, 1u) << run.err;
  expect_interrupted_sleep_run(run, 143, "SIGTERM", 42);
  EXPECT_LT(run.exit_after_signal, 10s) << run.err;
  // The final progress line is there, ended.
  EXPECT_NE(
      run.err.find("\rprocpool map: " + std::to_string(lines_of(run.out).size()) + " lines, "),
      std::string::npos)
      << run.err;
  EXPECT_NE(run.err.find(" lines/s in 0:"), std::string::npos) << run.err;
  ASSERT_FALSE(run.err.empty());
  EXPECT_EQ(run.err.back(), '\n') << run.err;
}

// Lines 3 and 4 (300 ms each) are running on the two workers when SIGTERM arrives: both
// complete within the grace and their results are written.
TEST_F(MapTest, TasksRunningAtTheSignalFinishWithinTheGrace) {
  RunOptions options;
  options.keep_stdin_open = true;
  options.signals = {{SIGTERM, 2, ""}};
  const Result run =
      run_procpool(sleep_run({}), repeat_line("1", 2) + repeat_line("300", 20), options);
  ASSERT_EQ(run.signals_sent, 1u) << run.err;
  expect_interrupted_sleep_run(run, 143, "SIGTERM", 22);
  const NotCompleted missing = parse_not_completed(run.err);
  EXPECT_EQ(missing.lines.count(3), 0u) << run.err;
  EXPECT_EQ(missing.lines.count(4), 0u) << run.err;
  EXPECT_GT(missing.rest_from, 4u) << run.err;
  EXPECT_GE(lines_of(run.out).size(), 4u) << run.err;
}

// Tasks of 10 s with --grace 100ms: their workers are killed when the grace runs out, and the
// lines are reported as not completed, not as failed.
TEST_F(MapTest, GraceRunsOutAndRunningTasksAreNotCompleted) {
  RunOptions options;
  options.keep_stdin_open = true;
  options.signals = {{SIGTERM, 2, ""}};
  const Result run = run_procpool(sleep_run({"--grace", "100ms"}),
                                  repeat_line("1", 2) + repeat_line("10000", 6), options);
  ASSERT_EQ(run.signals_sent, 1u) << run.err;
  expect_interrupted_sleep_run(run, 143, "SIGTERM", 8);
  EXPECT_EQ(run.out, "slept\nslept\n");
  EXPECT_NE(run.err.find("waiting up to 100 ms"), std::string::npos) << run.err;
  EXPECT_NE(run.err.find("procpool map: not completed: lines 3-\n"), std::string::npos) << run.err;
  EXPECT_EQ(run.err.find("WorkerCrashed"), std::string::npos) << run.err;
  EXPECT_LT(run.exit_after_signal, 5s) << run.err;
}

// A second SIGINT does not wait for the 60 s grace: the workers are killed at once.
TEST_F(MapTest, SecondSignalStopsAtOnce) {
  RunOptions options;
  options.keep_stdin_open = true;
  options.signals = {{SIGINT, 2, ""}, {SIGINT, 0, "SIGINT received"}};
  const Result run = run_procpool(sleep_run({"--grace", "60s"}),
                                  repeat_line("1", 2) + repeat_line("10000", 6), options);
  ASSERT_EQ(run.signals_sent, 2u) << run.err;
  expect_interrupted_sleep_run(run, 130, "SIGINT", 8);
  EXPECT_EQ(run.out, "slept\nslept\n");
  EXPECT_NE(run.err.find("interrupted by SIGINT, stopped at once"), std::string::npos) << run.err;
  EXPECT_NE(run.err.find("procpool map: not completed: lines 3-\n"), std::string::npos) << run.err;
  EXPECT_LT(run.exit_after_signal, 5s) << run.err;
}

// A fast stream interrupted in the middle: whatever was written is the right result of its
// line, in input order, and every line read without a result is named as not completed.
TEST_F(MapTest, InterruptedOutputIsInOrderAndNamesEveryMissingLine) {
  for (const bool unordered : {false, true}) {
    SCOPED_TRACE(unordered ? "--unordered" : "ordered");
    RunOptions options;
    options.keep_stdin_open = true;
    options.signals = {{SIGINT, 50'000, ""}};
    std::vector<std::string> args = {"map", "--workers", "2"};
    if (unordered) args.push_back("--unordered");
    args.insert(args.end(), {"--", worker("increment")});
    const Result run = run_procpool(args, numbers(0, 1'999'999), options);  // line L holds L - 1
    ASSERT_EQ(run.signals_sent, 1u) << run.err.substr(0, 2000);
    EXPECT_EXIT_CODE(run, 130);
    const NotCompleted missing = parse_not_completed(run.err);
    ASSERT_TRUE(missing.reported) << run.err.substr(0, 2000);
    ASSERT_GT(missing.rest_from, 1u) << run.err.substr(0, 2000);
    std::string expected;
    for (std::uint64_t line = 1; line < missing.rest_from; ++line) {
      if (missing.lines.count(line) == 0) expected += std::to_string(line) + "\n";
    }
    if (unordered) {
      EXPECT_TRUE(sorted_lines(run.out) == sorted_lines(expected))
          << run.out.size() << " bytes written, " << expected.size() << " expected";
    } else {
      EXPECT_TRUE(run.out == expected)
          << run.out.size() << " bytes written, " << expected.size() << " expected";
    }
  }
}

// A worker that dies under its task: the line's report says how (exit code or signal), how
// long the worker had been up, what it was running, and its last stderr lines, indented under
// the report, with --progress kept off the report's lines. The worker is crashy started by a
// shell that writes two lines to stderr first.
TEST_F(MapTest, CrashReportSaysHowTheWorkerEndedWithItsLastStderrLines) {
  const std::vector<std::string> wrapper = {
      "/bin/sh", "-c", "echo 'before the crash' >&2; echo 'second line' >&2; exec \"$0\"",
      worker("crashy")};
  std::vector<std::string> args = {"map",       "--workers", "1", "--progress",
                                   "--handler", "exit",      "--"};
  args.insert(args.end(), wrapper.begin(), wrapper.end());
  const Result exited = run_procpool(args, "7\n");
  EXPECT_EXIT_CODE(exited, 1);
  EXPECT_EQ(exited.out, "");
  EXPECT_NE(exited.err.find("procpool map: line 1: WorkerCrashed: worker 0 (pid "),
            std::string::npos)
      << exited.err;
  EXPECT_NE(exited.err.find("exit code 7, up "), std::string::npos) << exited.err;
  EXPECT_NE(exited.err.find("running a \"exit\" task (attempt 1 of 1); last stderr lines:\n"
                            "      | before the crash\n"
                            "      | second line\n"),
            std::string::npos)
      << exited.err;
  EXPECT_EQ(exited.err.find("\n\n"), std::string::npos) << exited.err;
  expect_messages_start_lines(exited.err, "procpool map: line ");

  args[5] = "segfault";
  const Result signalled = run_procpool(args, "x\n");
  EXPECT_EXIT_CODE(signalled, 1);
  EXPECT_NE(signalled.err.find("procpool map: line 1: WorkerCrashed: "), std::string::npos)
      << signalled.err;
  EXPECT_NE(signalled.err.find("killed by signal 11 (SIGSEGV)"), std::string::npos)
      << signalled.err;
  expect_messages_start_lines(signalled.err, "procpool map: line ");
}

}  // namespace
}  // namespace procpool::map_test
