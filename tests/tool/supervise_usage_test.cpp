// `procpool supervise` command lines that must not run anything: usage errors (exit 2, the
// message and the pointer to --help), and a CMD that is missing or not executable (exit 2, one
// line).

#include <string>  // outputs
#include <vector>  // arguments

#include <gtest/gtest.h>

#include "supervise_harness.hpp"

namespace procpool::supervise_test {
namespace {

// A usage error is the house form: the message, then "Try 'procpool supervise --help' ...",
// and nothing else (nothing started).
void expect_usage_error(const std::vector<std::string>& args, const std::string& mentions) {
  SuperviseRun run(args);
  EXPECT_EQ(run.wait_exit(), 2) << run.err();
  EXPECT_EQ(lines_with(run.err(), ""), 2u) << run.err();
  EXPECT_TRUE(run.err().starts_with("procpool supervise: ")) << run.err();
  EXPECT_NE(run.err().find(mentions), std::string::npos) << run.err();
  EXPECT_NE(run.err().find("Try 'procpool supervise --help'"), std::string::npos) << run.err();
  EXPECT_EQ(run.out(), "");
}

TEST(SuperviseUsage, UnknownOption) {
  expect_usage_error({"--frobnicate", "--", "true"}, "--frobnicate");
}

TEST(SuperviseUsage, MissingDashesOrCommand) {
  expect_usage_error({"true"}, "missing '--' before the command 'true'");
  expect_usage_error({"--numprocs", "2"}, "missing '-- CMD'");
  expect_usage_error({}, "missing '-- CMD'");
  expect_usage_error({"--"}, "missing CMD after '--'");
}

TEST(SuperviseUsage, BadValuesNameTheirOption) {
  for (const std::vector<std::string>& option : {std::vector<std::string>{"--stop-grace", "5x"},
                                                 {"--start-timeout", "-1s"},
                                                 {"--watchdog", "soon"},
                                                 {"--numprocs", "0"},
                                                 {"--numprocs", "1025"},
                                                 {"--restart", "sometimes"},
                                                 {"--ready", "tcp:0"},
                                                 {"--ready", "tcp:http"},
                                                 {"--stop-signal", "SIGFOO"},
                                                 {"--stop-signal", "0"},
                                                 {"--memory-limit", "1.5G"},
                                                 {"--memory-hard-limit", "12Q"},
                                                 {"--env", "=x"},
                                                 {"--env", "NOEQUALS"},
                                                 {"--log-keep", "-1"},
                                                 {"--give-up-after", "x"},
                                                 {"--name", "a:b"}}) {
    std::vector<std::string> args = option;
    args.insert(args.end(), {"--", "true"});
    expect_usage_error(args, option[0]);
  }
}

TEST(SuperviseUsage, LogSizeWithoutLogFile) {
  expect_usage_error({"--log-max-size", "1M", "--", "true"}, "--log-max-size needs --log FILE");
}

TEST(SuperviseUsage, HelpListsTheOptions) {
  SuperviseRun run({"--help"});
  EXPECT_EQ(run.wait_exit(), 0);
  for (const char* option : {"--numprocs", "--restart", "--ready", "--watchdog", "--stop-signal",
                             "--memory-limit", "--log-max-size", "Exit status"}) {
    EXPECT_NE(run.out().find(option), std::string::npos) << option;
  }
}

TEST(SuperviseUsage, MissingCommandFailsInOneLineBeforeAnythingRuns) {
  SuperviseRun run({"--", "/nonexistent/procpool-test/program"});
  EXPECT_EQ(run.wait_exit(), 2);
  EXPECT_EQ(run.err(),
            "procpool supervise: /nonexistent/procpool-test/program: command not found\n");
  SuperviseRun bare({"--", "procpool-test-no-such-command"});
  EXPECT_EQ(bare.wait_exit(), 2);
  EXPECT_EQ(bare.err(), "procpool supervise: procpool-test-no-such-command: command not found\n");
}

TEST(SuperviseUsage, NonExecutableCommandFailsInOneLine) {
  const ScriptDir dir;
  const std::string script = dir.script("plain", "exit 0", /*executable=*/false);
  SuperviseRun run({"--", script});
  EXPECT_EQ(run.wait_exit(), 2);
  EXPECT_EQ(run.err(), "procpool supervise: " + script + ": cannot execute: Permission denied\n");
}

// Checked before anything runs: no "started" line.
TEST(SuperviseUsage, BadChdirOrLogFileFailsInOneLine) {
  const ScriptDir dir;
  const std::string script = dir.script("ok", "exit 0");
  SuperviseRun file_dir({"--chdir", script, "--", script});
  EXPECT_EQ(file_dir.wait_exit(), 2);
  EXPECT_EQ(file_dir.err(), "procpool supervise: --chdir " + script + ": Not a directory\n");
  SuperviseRun missing_dir({"--chdir", dir.file("none"), "--", script});
  EXPECT_EQ(missing_dir.wait_exit(), 2);
  EXPECT_EQ(missing_dir.err(),
            "procpool supervise: --chdir " + dir.file("none") + ": No such file or directory\n");
  SuperviseRun log({"--log", dir.file("none/x.log"), "--", script});
  EXPECT_EQ(log.wait_exit(), 2);
  EXPECT_EQ(lines_with(log.err(), ""), 1u) << log.err();
  EXPECT_NE(log.err().find("cannot open log file " + dir.file("none/x.log")), std::string::npos)
      << log.err();
}

}  // namespace
}  // namespace procpool::supervise_test
