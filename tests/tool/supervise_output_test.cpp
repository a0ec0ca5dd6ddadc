// What `procpool supervise` gives the program and does with its output: --env and --chdir, the
// output passed through by default, --log with size rotation.

#include <sys/stat.h>  // stat: the log's mode

#include <filesystem>  // file sizes
#include <fstream>     // the log
#include <sstream>     // the log
#include <string>      // outputs

#include <gtest/gtest.h>

#include "supervise_harness.hpp"

namespace procpool::supervise_test {
namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream text;
  text << in.rdbuf();
  return std::move(text).str();
}

TEST(SuperviseOutput, EnvAndChdirReachTheProgram) {
  const ScriptDir dir;
  std::filesystem::create_directory(dir.file("work"));
  SuperviseRun run({"--env", "GREETING=hello=world", "--env", "EMPTY=", "--chdir", dir.file("work"),
                    "--restart", "never", "--",
                    dir.script("env", "echo \"$GREETING [$EMPTY] $(pwd)\"")});
  EXPECT_EQ(run.wait_exit(), 0) << run.err();
  EXPECT_EQ(run.out(), "hello=world [] " + dir.file("work") + "\n");
}

TEST(SuperviseOutput, PassedThroughByDefault) {
  const ScriptDir dir;
  SuperviseRun run(
      {"--restart", "never", "--", dir.script("talk", "echo to-out\necho to-err >&2")});
  EXPECT_EQ(run.wait_exit(), 0) << run.err();
  EXPECT_EQ(run.out(), "to-out\n");
  EXPECT_EQ(run.err_lines_with("to-err"), 1u) << run.err();
}

TEST(SuperviseOutput, LogTakesBothStreams) {
  const ScriptDir dir;
  const std::string log = dir.file("talk.log");
  SuperviseRun run({"--log", log, "--restart", "never", "--",
                    dir.script("talk", "echo to-out\necho to-err >&2")});
  EXPECT_EQ(run.wait_exit(), 0) << run.err();
  EXPECT_EQ(run.out(), "");
  EXPECT_EQ(run.err_lines_with("to-err"), 0u) << run.err();
  const std::string text = read_file(log);
  EXPECT_NE(text.find("to-out\n"), std::string::npos) << text;
  EXPECT_NE(text.find("to-err\n"), std::string::npos) << text;
  struct stat st {};
  ASSERT_EQ(::stat(log.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

// 100-byte files: both streams share one rotation, so every rotated file is full and only
// --log-keep of them are kept.
TEST(SuperviseOutput, LogRotatesBySize) {
  const ScriptDir dir;
  const std::string log = dir.file("big.log");
  // 30 lines of 10 bytes, half on each stream: 300 bytes.
  SuperviseRun run({"--log", log, "--log-max-size", "100", "--log-keep", "2", "--restart", "never",
                    "--",
                    dir.script("big",
                               "for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15; do\n"
                               "  echo 123456789\n  echo 987654321 >&2\ndone")});
  EXPECT_EQ(run.wait_exit(), 0) << run.err();
  EXPECT_EQ(std::filesystem::file_size(log + ".1"), 100u);
  EXPECT_EQ(std::filesystem::file_size(log + ".2"), 100u);
  EXPECT_FALSE(std::filesystem::exists(log + ".3"));
  EXPECT_EQ(std::filesystem::file_size(log), 100u);
}

}  // namespace
}  // namespace procpool::supervise_test
