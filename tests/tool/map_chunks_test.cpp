// `procpool map` with its lines packed in chunks (many lines per message to a worker), as it
// does when lines are fast. PROCPOOL_MAP_CHUNK_LINES fixes the chunk size, so that these runs
// take the chunked path however fast the machine is; they expect what a run of one task per
// line gives: results in order, each line's own failure, and a chunk that fails as a whole
// (its worker crashed, its results together too large) run again line by line.

#include <set>     // poison lines
#include <string>  // inputs and outputs
#include <vector>  // arguments

#include <gtest/gtest.h>

#include "map_run_harness.hpp"

namespace procpool::map_test {
namespace {

RunOptions chunks_of(std::size_t lines) {
  RunOptions options;
  options.env = {"PROCPOOL_MAP_CHUNK_LINES=" + std::to_string(lines)};
  return options;
}

TEST_F(MapTest, ChunkedLinesKeepInputOrder) {
  const Result run = run_procpool({"map", "--workers", "2", "--", worker("increment")},
                                  numbers(1, 100'000), chunks_of(100));
  EXPECT_EXIT_CODE(run, 0);
  EXPECT_TRUE(run.out == numbers(2, 100'001)) << run.out.size() << " bytes";
  EXPECT_EQ(run.err, "");
}

TEST_F(MapTest, ChunkedLinesUnorderedWriteTheSameResults) {
  const Result run =
      run_procpool({"map", "--workers", "2", "--unordered", "--", worker("increment")},
                   numbers(1, 100'000), chunks_of(100));
  EXPECT_EXIT_CODE(run, 0);
  EXPECT_TRUE(sorted_lines(run.out) == sorted_lines(numbers(2, 100'001)));
}

// A line that fails on its own fails alone; the other lines of its chunk are written.
TEST_F(MapTest, ChunkedLineFailuresAreTheirOwn) {
  const Result run =
      run_procpool({"map", "--", worker("increment")}, "1\nnot a number\n3\n", chunks_of(64));
  EXPECT_EXIT_CODE(run, 1);
  EXPECT_EQ(run.out, "2\n4\n");
  EXPECT_NE(run.err.find("procpool map: line 2: HandlerError: increment: not an unsigned integer"),
            std::string::npos)
      << run.err;
  EXPECT_EQ(run.err.find("line 1:"), std::string::npos) << run.err;
  EXPECT_EQ(run.err.find("line 3:"), std::string::npos) << run.err;
}

// A poison line kills the worker running its chunk: the chunk's lines go again one by one,
// so the poison line fails alone as WorkerCrashed and every other line is written, in order.
TEST_F(MapTest, ChunkedPoisonLinesFailAloneAndEveryOtherLineIsProcessed) {
  constexpr std::uint64_t kLines = 20'000, kEvery = 2'000;
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
  const Result run =
      run_procpool({"map", "--handler", "poison", "--", worker("crashy")}, input, chunks_of(512));
  EXPECT_EXIT_CODE(run, 1);
  EXPECT_TRUE(run.out == expected) << run.out.size() << " bytes written, " << expected.size()
                                   << " expected; stderr: " << run.err.substr(0, 4000);
  for (const std::uint64_t line : poison) {
    EXPECT_NE(run.err.find("procpool map: line " + std::to_string(line) + ": WorkerCrashed: "),
              std::string::npos)
        << line << ": " << run.err.substr(0, 4000);
  }
  std::size_t reports = 0;
  for (std::size_t at = run.err.find("procpool map: line "); at != std::string::npos;
       at = run.err.find("procpool map: line ", at + 1)) {
    ++reports;
  }
  EXPECT_EQ(reports, poison.size()) << run.err.substr(0, 4000);
  EXPECT_EQ(run.err.find("stopped ("), std::string::npos) << run.err.substr(0, 4000);
}

// The crash of a chunk is not charged to its lines: each line crashes its worker once more on
// its own (attempt 1 again), and --retries 1 recovers every one.
TEST_F(MapTest, ChunkedCrashesAreRetriedLineByLine) {
  const Result run = run_procpool({"map", "--workers", "1", "--retries", "1", "--handler",
                                   "crash_on_first_attempt", "--", worker("crashy")},
                                  numbers(1, 100), chunks_of(50));
  EXPECT_EXIT_CODE(run, 0);
  EXPECT_EQ(run.out, numbers(1, 100));
}

TEST_F(MapTest, ChunkedCrashWithoutRetriesFailsEachLineOnItsOwn) {
  const Result run = run_procpool(
      {"map", "--workers", "1", "--handler", "crash_on_first_attempt", "--", worker("crashy")},
      "a\nb\n", chunks_of(2));
  EXPECT_EXIT_CODE(run, 1);
  EXPECT_EQ(run.out, "");
  EXPECT_NE(run.err.find("line 1: WorkerCrashed"), std::string::npos) << run.err;
  EXPECT_NE(run.err.find("line 2: WorkerCrashed"), std::string::npos) << run.err;
}

// 40 results of 2 MiB: together above max_payload (64 MiB), so their chunk fails whole with
// PayloadTooLarge; line by line each fits, and every one is written.
TEST_F(MapTest, ChunkWhoseResultsTogetherAreTooLargeIsRunLineByLine) {
  constexpr std::size_t kResult = 2 << 20;
  constexpr std::size_t kLines = 40;
  RunOptions options = chunks_of(64);
  options.keep_stdout = false;
  const Result run =
      run_procpool({"map", "--workers", "1", "--handler", "fill", "--", worker("crashy")},
                   repeat_line(std::to_string(kResult), kLines), options);
  EXPECT_EXIT_CODE(run, 0);
  EXPECT_EQ(run.out_bytes, kLines * (kResult + 1));
  EXPECT_EQ(run.err, "");
}

}  // namespace
}  // namespace procpool::map_test
