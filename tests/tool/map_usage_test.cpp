// `procpool` and `procpool map` command lines: usage errors, typed option values, help and
// version, --progress and --stats.

#include <algorithm>  // std::count
#include <regex>      // the help's command lines
#include <string>     // inputs and outputs
#include <tuple>      // std::tuple
#include <utility>    // std::pair
#include <vector>     // arguments

#include <gtest/gtest.h>

#include "map_run_harness.hpp"

namespace procpool::map_test {
namespace {

// --- usage errors ---

TEST_F(MapTest, UnknownOptionIsAUsageError) {
  const Result run = run_procpool({"map", "--frobnicate", "--", worker("increment")});
  EXPECT_EXIT_CODE(run, 2);
  EXPECT_NE(run.err.find("--frobnicate"), std::string::npos) << run.err;
  EXPECT_NE(run.err.find("procpool map --help"), std::string::npos) << run.err;
}

TEST_F(MapTest, MissingWorkerPathIsReportedWithThePath) {
  const Result run = run_procpool({"map", "--", "/nonexistent/procpool-test/worker"}, "1\n");
  EXPECT_EXIT_CODE(run, 2);
  EXPECT_NE(run.err.find("/nonexistent/procpool-test/worker"), std::string::npos) << run.err;
  EXPECT_EQ(run.out, "");
}

TEST_F(MapTest, MissingDashesOrWorkerIsAUsageError) {
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"map", worker("increment")},
        std::vector<std::string>{"map", "--workers", "2"}, std::vector<std::string>{"map"},
        std::vector<std::string>{"map", "--"}}) {
    const Result run = run_procpool(args);
    EXPECT_EXIT_CODE(run, 2);
    EXPECT_NE(run.err.find("procpool map --help"), std::string::npos) << run.err;
  }
}

TEST_F(MapTest, BadNumbersAreUsageErrors) {
  for (const std::vector<std::string>& options :
       {std::vector<std::string>{"--workers", "0"}, std::vector<std::string>{"--workers", "two"},
        std::vector<std::string>{"--workers", "-1"}, std::vector<std::string>{"--retries", "-1"},
        std::vector<std::string>{"--retries", "1x"}, std::vector<std::string>{"--timeout", "5x"},
        std::vector<std::string>{"--timeout", "ms"}, std::vector<std::string>{"--timeout", "-2s"},
        std::vector<std::string>{"--grace", "5x"}, std::vector<std::string>{"--grace", "-1s"}}) {
    std::vector<std::string> args = {"map"};
    args.insert(args.end(), options.begin(), options.end());
    args.insert(args.end(), {"--", worker("increment")});
    const Result run = run_procpool(args);
    EXPECT_EXIT_CODE(run, 2);
    EXPECT_NE(run.err.find(options[0]), std::string::npos) << run.err;
  }
}

// Each form is read as the duration it says: --timeout's shows in the Timeout report of a
// hung task, --grace's in the notice after SIGINT while tasks run (sleep_run, below).

TEST_F(MapTest, AcceptsDurationForms) {
  for (const auto& [timeout, shown] :
       {std::pair{"300ms", "300 ms"}, std::pair{"0.3", "300 ms"}, std::pair{"0.25s", "250 ms"}}) {
    const Result run = run_procpool(
        {"map", "--timeout", timeout, "--handler", "hang", "--", worker("crashy")}, "1\n");
    EXPECT_EXIT_CODE(run, 1);
    EXPECT_NE(run.err.find(std::string("line 1: Timeout: ")), std::string::npos) << run.err;
    EXPECT_NE(run.err.find(std::string("timed out after ") + shown), std::string::npos)
        << timeout << ": " << run.err;
  }
  for (const auto& [grace, shown] :
       {std::pair{"500ms", "500 ms"}, std::pair{"2s", "2 s"}, std::pair{"1m", "60 s"},
        std::pair{"1.5m", "90 s"}, std::pair{"1h", "3600 s"}, std::pair{"3", "3 s"},
        std::pair{"0.5", "500 ms"}}) {
    RunOptions options;
    options.keep_stdin_open = true;
    options.signals = {{SIGINT, 2, ""}};
    const Result run = run_procpool(sleep_run({"--grace", grace}),
                                    repeat_line("1", 2) + repeat_line("200", 40), options);
    EXPECT_EXIT_CODE(run, 130);
    EXPECT_NE(run.err.find(std::string("waiting up to ") + shown + " for the running ones"),
              std::string::npos)
        << grace << ": " << run.err;
  }
}

TEST_F(MapTest, UnknownHandlerIsAUsageError) {
  const Result run =
      run_procpool({"map", "--handler", "no_such_handler", "--", worker("increment")}, "1\n");
  EXPECT_EXIT_CODE(run, 2);
  EXPECT_NE(run.err.find("no_such_handler"), std::string::npos) << run.err;
}

TEST_F(MapTest, UnknownCommandIsAUsageError) {
  const Result run = run_procpool({"frobnicate"});
  EXPECT_EXIT_CODE(run, 2);
  EXPECT_NE(run.err.find("frobnicate"), std::string::npos) << run.err;
}

// --- typed option values, the command table ---

// A bad value fails in the option parser with the option's name, the value and what is
// expected, as one line and the hint, for each typed value.
TEST_F(MapTest, BadValueIsOneLineNamingTheOptionAndTheValue) {
  for (const auto& [option, value, expected] :
       {std::tuple{"--workers", "two", "expected a whole number, 1 to 1024, or auto"},
        std::tuple{"--retries", "10001", "expected a whole number, 0 to 10000"},
        std::tuple{"--grace", "1y", "expected a duration such as 500ms, 2s or 1m"}}) {
    const Result run = run_procpool({"map", option, value, "--", worker("increment")});
    EXPECT_EXIT_CODE(run, 2);
    const std::string first_line =
        "procpool map: invalid " + std::string(option) + " '" + value + "': " + expected;
    EXPECT_TRUE(run.err.starts_with(first_line)) << run.err;
    EXPECT_TRUE(run.err.ends_with("\nTry 'procpool map --help' for more information.\n"))
        << run.err;
    EXPECT_EQ(std::count(run.err.begin(), run.err.end(), '\n'), 2) << run.err;
  }
}

// `--workers auto` is the number of CPUs: a run with it succeeds like one without.
TEST_F(MapTest, WorkersAutoIsAccepted) {
  const Result run =
      run_procpool({"map", "--workers", "auto", "--", worker("increment")}, numbers(1, 100));
  EXPECT_EXIT_CODE(run, 0);
  EXPECT_EQ(run.out, numbers(2, 101));
}

// An abbreviation is no option (`--work` must not silently mean --workers), and an option
// given twice is refused rather than one of the values silently winning.
TEST_F(MapTest, AbbreviatedOrRepeatedOptionIsAUsageError) {
  const Result abbreviated = run_procpool({"map", "--work", "2", "--", worker("increment")});
  EXPECT_EXIT_CODE(abbreviated, 2);
  EXPECT_NE(abbreviated.err.find("unrecognised option '--work'"), std::string::npos)
      << abbreviated.err;
  const Result repeated =
      run_procpool({"map", "--workers", "2", "--workers", "3", "--", worker("increment")});
  EXPECT_EXIT_CODE(repeated, 2);
  EXPECT_NE(repeated.err.find("'--workers' cannot be specified more than once"), std::string::npos)
      << repeated.err;
}

// Before the command, only procpool's own options: anything else is a one-line usage error
// with the hint to `procpool --help`.
TEST_F(MapTest, TopLevelUsageErrorsAreOneLineWithTheHint) {
  for (const auto& [args, message] :
       {std::pair{std::vector<std::string>{"--frobnicate", "map"},
                  "procpool: unrecognised option '--frobnicate'\n"},
        std::pair{std::vector<std::string>{}, "procpool: missing command\n"},
        std::pair{std::vector<std::string>{"frobnicate"},
                  "procpool: unknown command 'frobnicate'\n"}}) {
    const Result run = run_procpool(args);
    EXPECT_EXIT_CODE(run, 2);
    EXPECT_EQ(run.err, std::string(message) + "Try 'procpool --help' for more information.\n");
    EXPECT_EQ(run.out, "");
  }
}

// The top-level help lists each command with its summary; a command's help lists each of its
// options with its value, generated from the options the parser reads, for -h as for --help.
TEST_F(MapTest, HelpIsGeneratedFromTheCommandsAndTheirOptions) {
  const Result help = run_procpool({"-h"});
  EXPECT_EXIT_CODE(help, 0);
  // One line per command of the table: its name, then its summary (the column is as wide as
  // the longest name).
  for (const char* line : {R"(\n  map +run a worker handler on every line of standard input)",
                           R"(\n  supervise +keep one program running)"}) {
    EXPECT_TRUE(std::regex_search(help.out, std::regex(line))) << line << " in\n" << help.out;
  }
  EXPECT_NE(help.out.find("--version"), std::string::npos) << help.out;
  const Result map_help = run_procpool({"map", "-h"});
  EXPECT_EXIT_CODE(map_help, 0);
  EXPECT_EQ(map_help.out, run_procpool({"map", "--help"}).out);
  for (const char* option : {"--workers N ", "--handler NAME ", "--retries N ",
                             "--timeout DURATION ", "--grace DURATION ", "--unordered ",
                             "--empty-on-failure ", "--progress ", "--no-progress ", "--stats "}) {
    EXPECT_NE(map_help.out.find(std::string("\n  ") + option), std::string::npos) << option << "\n"
                                                                                  << map_help.out;
  }
  EXPECT_EQ(map_help.out.find(" \n"), std::string::npos) << "trailing spaces:\n" << map_help.out;
}

// --- help, version, progress, stats ---

TEST_F(MapTest, HelpAndVersion) {
  const Result version = run_procpool({"--version"});
  EXPECT_EXIT_CODE(version, 0);
  EXPECT_EQ(version.out, "procpool 0.1.0\n");
  const Result help = run_procpool({"--help"});
  EXPECT_EXIT_CODE(help, 0);
  EXPECT_NE(help.out.find("map"), std::string::npos);
  const Result map_help = run_procpool({"map", "--help"});
  EXPECT_EXIT_CODE(map_help, 0);
  EXPECT_NE(map_help.out.find("Usage: procpool map"), std::string::npos);
  EXPECT_NE(map_help.out.find("--unordered"), std::string::npos);
  EXPECT_NE(map_help.out.find("--grace DURATION"), std::string::npos);
  EXPECT_NE(map_help.out.find("130 interrupted by SIGINT, 143 interrupted by SIGTERM"),
            std::string::npos);
}

TEST_F(MapTest, StatsPrintsASummary) {
  const Result run = run_procpool({"map", "--stats", "--", worker("increment")}, numbers(1, 1000));
  EXPECT_EXIT_CODE(run, 0);
  EXPECT_EQ(run.out, numbers(2, 1001));
  EXPECT_NE(run.err.find("1000 tasks, 0 failed"), std::string::npos) << run.err;
  EXPECT_NE(run.err.find("lines/s"), std::string::npos) << run.err;
}

TEST_F(MapTest, ProgressGoesToStderrOnly) {
  const Result run =
      run_procpool({"map", "--progress", "--", worker("increment")}, numbers(1, 1000));
  EXPECT_EXIT_CODE(run, 0);
  EXPECT_EQ(run.out, numbers(2, 1001));
  EXPECT_NE(run.err.find("\rprocpool map: 1,000 lines"), std::string::npos) << run.err;
}

}  // namespace
}  // namespace procpool::map_test
