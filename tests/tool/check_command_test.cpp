// `procpool check CONFIG.toml`, run as a user does: the sample config is valid, a broken one
// gets every problem as FILE:LINE:COL and exit status 1, usage errors 2.
#include <gtest/gtest.h>

#include <cstdlib>  // std::getenv
#include <fstream>  // config files
#include <string>   // outputs

#include "map_run_harness.hpp"  // run_procpool

namespace procpool::map_test {
namespace {

std::string write_file(const std::string& name, const std::string& text) {
  const std::string path = ::testing::TempDir() + "procpool-check-" + name;
  std::ofstream(path) << text;
  return path;
}

TEST(CheckCommand, TheSampleConfigIsValid) {
  // Its pool's worker is looked up in $PATH.
  RunOptions options;
  const char* path = std::getenv("PATH");
  options.env.push_back(std::string("PATH=") + PROCPOOL_TEST_WORKER_DIR + ":" +
                        (path != nullptr ? path : "/usr/bin:/bin"));
  const Result run =
      run_procpool({"check", PROCPOOL_SOURCE_DIR "/docs/examples/procpool.toml"}, "", options);
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_NE(run.out.find(": ok: 2 programs (2 instances), 1 pool"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("start order: ticker greeter"), std::string::npos) << run.out;
}

TEST(CheckCommand, AWorkerMissingFromPathIsAProblem) {
  RunOptions options;
  options.env.push_back("PATH=/nonexistent/procpool-test");
  const Result run =
      run_procpool({"check", PROCPOOL_SOURCE_DIR "/docs/examples/procpool.toml"}, "", options);
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_NE(run.err.find("pool 'increment': cannot run 'procpool-worker-increment': No such file "
                         "or directory (looked up in $PATH)"),
            std::string::npos)
      << run.err;
}

TEST(CheckCommand, EveryProblemIsReportedWithItsPosition) {
  const std::string path = write_file("broken.toml",
                                      "[[program]]\n"
                                      "name = \"web\"\n"
                                      "comand = \"/bin/true\"\n"
                                      "[[pool]]\n"
                                      "name = \"p\"\n"
                                      "executable = \"/nonexistent/procpool-test/worker\"\n");
  const Result run = run_procpool({"check", path});
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_EQ(run.out, "");
  EXPECT_NE(run.err.find(path + ":1:1: program 'web': missing command"), std::string::npos)
      << run.err;
  EXPECT_NE(run.err.find(path + ":3:1: program 'web': unknown key 'comand' (did you mean "
                                "'command'?)"),
            std::string::npos)
      << run.err;
  EXPECT_NE(run.err.find(path + ":6:14: pool 'p': cannot run '/nonexistent/procpool-test/worker'"),
            std::string::npos)
      << run.err;
  EXPECT_NE(run.err.find("procpool check: " + path + ": 3 problems"), std::string::npos) << run.err;
}

TEST(CheckCommand, AFileThatCannotBeReadFails) {
  const Result run = run_procpool({"check", "/nonexistent/procpool-test/config.toml"});
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_NE(run.err.find("/nonexistent/procpool-test/config.toml: cannot read it: No such file"),
            std::string::npos)
      << run.err;
}

TEST(CheckCommand, UsageErrors) {
  const Result none = run_procpool({"check"});
  EXPECT_EQ(none.exit_code, 2);
  EXPECT_NE(none.err.find("procpool check: missing CONFIG.toml"), std::string::npos) << none.err;
  const Result two = run_procpool({"check", "a.toml", "b.toml"});
  EXPECT_EQ(two.exit_code, 2);
  const Result help = run_procpool({"check", "--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.out.find("Usage: procpool check"), std::string::npos) << help.out;
}

}  // namespace
}  // namespace procpool::map_test
