// `procpool map` failures: failing, hung and crashing lines, retries, poison lines, and a
// standard output that is closed, broken or full.

#include <string>  // inputs and outputs
#include <vector>  // arguments

#include <gtest/gtest.h>

#include "map_run_harness.hpp"

namespace procpool::map_test {
namespace {

// --- failures ---

TEST_F(MapTest, FailingLineIsReportedAndTheOthersStillWritten) {
  const Result run = run_procpool({"map", "--", worker("increment")}, "1\nnot a number\n3\n");
  EXPECT_EXIT_CODE(run, 1);
  EXPECT_EQ(run.out, "2\n4\n");  // nothing at all for the failed line
  EXPECT_NE(run.err.find("procpool map: line 2: HandlerError: increment: not an unsigned integer"),
            std::string::npos)
      << run.err;
}

TEST_F(MapTest, ThrowingHandlerFailsEveryLineWithItsMessage) {
  const Result run =
      run_procpool({"map", "--handler", "throw", "--", worker("crashy")}, "first\nsecond\n");
  EXPECT_EXIT_CODE(run, 1);
  EXPECT_EQ(run.out, "");
  EXPECT_NE(run.err.find("line 1: HandlerError: first"), std::string::npos) << run.err;
  EXPECT_NE(run.err.find("line 2: HandlerError: second"), std::string::npos) << run.err;
}

TEST_F(MapTest, TimeoutFailsHungTasks) {
  const Result run = run_procpool(
      {"map", "--timeout", "200ms", "--handler", "hang", "--", worker("crashy")}, "1\n2\n");
  EXPECT_EXIT_CODE(run, 1);
  EXPECT_NE(run.err.find("line 1: Timeout"), std::string::npos) << run.err;
  EXPECT_NE(run.err.find("line 2: Timeout"), std::string::npos) << run.err;
}

// One line per worker: each crashes its worker once, then succeeds on its retry.
TEST_F(MapTest, RetriesRecoverTasksWhoseWorkerCrashed) {
  const Result run = run_procpool({"map", "--workers", "2", "--retries", "1", "--handler",
                                   "crash_on_first_attempt", "--", worker("crashy")},
                                  "a\nb\n");
  EXPECT_EXIT_CODE(run, 0);
  EXPECT_EQ(run.out, "a\nb\n");
}

// Several lines on one worker, so a finished task and the crashing one are on board together;
// every line crashes a worker once, which its task is charged for (not a crash loop). Fails
// while the pool blames the first unanswered task for a crash:
// the worker publishes results in batches, so the retried line 1, finished on the second
// worker but its result not yet published when line 2 crashes that worker, is blamed and
// reported as poison.
TEST_F(MapTest, RetriesRecoverCrashesWithSeveralTasksOnBoard) {
  const Result run = run_procpool({"map", "--workers", "1", "--retries", "1", "--handler",
                                   "crash_on_first_attempt", "--", worker("crashy")},
                                  numbers(1, 100));
  EXPECT_EXIT_CODE(run, 0);
  EXPECT_EQ(run.out, numbers(1, 100));
}

TEST_F(MapTest, WithoutRetriesACrashFailsTheLine) {
  const Result run = run_procpool(
      {"map", "--workers", "1", "--handler", "crash_on_first_attempt", "--", worker("crashy")},
      "a\n");
  EXPECT_EXIT_CODE(run, 1);
  EXPECT_NE(run.err.find("line 1: WorkerCrashed"), std::string::npos) << run.err;
}

TEST_F(MapTest, ClosedStdoutExitsWithStatus1) {
  RunOptions options;
  options.close_stdout = true;
  const Result run = run_procpool({"map", "--", worker("increment")}, numbers(1, 200'000), options);
  EXPECT_EXIT_CODE(run, 1);
  EXPECT_NE(run.err.find("cannot write standard output"), std::string::npos) << run.err;
}

// The summary of a run that stopped because standard output failed: the results written and
// the lines not completed (counted from 1), which must add up to every line.
struct OutputFailure {
  bool reported = false;
  std::uint64_t written = 0;
  NotCompleted missing;
};

OutputFailure parse_output_failure(const std::string& err, const std::string& reason) {
  OutputFailure result;
  const std::string marker = "procpool map: stopped, standard output failed (" + reason + "): ";
  const std::size_t at = err.find(marker);
  if (at == std::string::npos) return result;
  result.reported = true;
  std::string count = err.substr(at + marker.size());
  count.resize(count.find(" "));
  std::erase(count, ',');  // "1,234"
  result.written = std::stoull(count);
  result.missing = parse_not_completed(err);
  return result;
}

// The reader of stdout reads some results, then goes: the run stops with status 1, says so, and
// accounts for every line: results written first, then the lines not completed, to run again.
TEST_F(MapTest, BrokenPipeStopsTheRunAndNamesTheLinesNotWritten) {
  RunOptions options;
  options.close_stdout_after_lines = 1000;
  const Result run = run_procpool({"map", "--", worker("increment")}, numbers(0, 199'999), options);
  EXPECT_EXIT_CODE(run, 1);
  EXPECT_NE(run.err.find("procpool map: cannot write standard output: Broken pipe"),
            std::string::npos)
      << run.err.substr(0, 4000);
  const OutputFailure failure = parse_output_failure(run.err, "Broken pipe");
  ASSERT_TRUE(failure.reported) << run.err.substr(0, 4000);
  EXPECT_GE(failure.written, 1000u) << run.err.substr(0, 4000);
  EXPECT_TRUE(run.out.starts_with(numbers(1, 1000))) << run.out.substr(0, 100);
  // In input order: the first `written` lines got out; the rest is named, from the next one:
  // as "N-" if the input was not all read when the run stopped, else as the closed range "N-M".
  if (failure.missing.rest_from != 0) {
    EXPECT_TRUE(failure.missing.lines.empty()) << run.err.substr(0, 4000);
    EXPECT_EQ(failure.missing.rest_from, failure.written + 1) << run.err.substr(0, 4000);
  } else {
    constexpr std::uint64_t kLines = 200'000;
    ASSERT_EQ(failure.missing.lines.size(), kLines - failure.written) << run.err.substr(0, 4000);
    EXPECT_EQ(*failure.missing.lines.begin(), failure.written + 1) << run.err.substr(0, 4000);
    EXPECT_EQ(*failure.missing.lines.rbegin(), kLines) << run.err.substr(0, 4000);
  }
}

// /dev/full: every write fails ENOSPC. Nothing was written, and every line is named.
TEST_F(MapTest, FullDiskStopsTheRunAndNamesEveryLine) {
  RunOptions options;
  options.stdout_is = "full";
  const Result run = run_procpool({"map", "--", worker("increment")}, numbers(1, 200'000), options);
  EXPECT_EXIT_CODE(run, 1);
  EXPECT_NE(run.err.find("procpool map: cannot write standard output: No space left on device"),
            std::string::npos)
      << run.err;
  const OutputFailure failure = parse_output_failure(run.err, "No space left on device");
  ASSERT_TRUE(failure.reported) << run.err;
  EXPECT_EQ(failure.written, 0u) << run.err;
  EXPECT_TRUE(failure.missing.lines.empty()) << run.err;
  EXPECT_EQ(failure.missing.rest_from, 1u) << run.err;
}

// `procpool map ... >&-`: the results would go nowhere. Refused before any line is read.
TEST_F(MapTest, ClosedOrReadOnlyStdoutIsRefusedWithStatus2) {
  for (const char* stdout_is : {"closed", "read-only"}) {
    RunOptions options;
    options.stdout_is = stdout_is;
    const Result run = run_procpool({"map", "--", worker("increment")}, numbers(1, 1000), options);
    EXPECT_EXIT_CODE(run, 2);
    EXPECT_NE(run.err.find("procpool map: standard output is "), std::string::npos)
        << stdout_is << ": " << run.err;
  }
}

// --empty-on-failure: each failed line leaves an empty line in its place, so output line N is
// input line N's result; the failures are reported as usual.
TEST_F(MapTest, EmptyOnFailureKeepsOutputAlignedWithInput) {
  const Result run = run_procpool({"map", "--empty-on-failure", "--", worker("increment")},
                                  "1\nnot a number\n3\nx\n5\n");
  EXPECT_EXIT_CODE(run, 1);
  EXPECT_EQ(run.out, "2\n\n4\n\n6\n");
  EXPECT_NE(run.err.find("procpool map: line 2: HandlerError: "), std::string::npos) << run.err;
  EXPECT_NE(run.err.find("procpool map: line 4: HandlerError: "), std::string::npos) << run.err;
}

// 9 crashing ("poison") lines spread over 200,000, with default options: each fails as a
// WorkerCrashed line of its own, and every other line is processed, in order. A death while a
// task runs is charged to that task, never counted as a crash loop that ends the pool.
TEST_F(MapTest, PoisonLinesFailAloneAndEveryOtherLineIsProcessed) {
  constexpr std::uint64_t kLines = 200'000, kEvery = 20'000;
  std::string input, expected;
  std::set<std::uint64_t> poison;  // counted from 1
  for (std::uint64_t line = 1; line <= kLines; ++line) {
    if (line % kEvery == 0 && line < kLines) {
      poison.insert(line);
      input += "poison\n";
    } else {
      input += std::to_string(line) + "\n";
      expected += std::to_string(line) + "\n";
    }
  }
  ASSERT_EQ(poison.size(), 9u);
  const Result run =
      run_procpool({"map", "--handler", "poison", "--", worker("crashy")}, input, RunOptions{});
  EXPECT_EXIT_CODE(run, 1);  // some task failed
  EXPECT_TRUE(run.out == expected) << run.out.size() << " bytes written, " << expected.size()
                                   << " expected; stderr: " << run.err.substr(0, 4000);
  for (const std::uint64_t line : poison) {
    EXPECT_NE(run.err.find("procpool map: line " + std::to_string(line) + ": WorkerCrashed: "),
              std::string::npos)
        << line << ": " << run.err.substr(0, 4000);
  }
  EXPECT_EQ(run.err.find("stopped ("), std::string::npos) << run.err.substr(0, 4000);
}

}  // namespace
}  // namespace procpool::map_test
