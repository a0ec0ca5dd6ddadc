// The daemon's config file (supervisor/tool/config/): what [[program]] and [[pool]] sections
// become, and every problem reported with its line and column, unknown keys with the closest
// known one.
#include <gtest/gtest.h>

#include <stdlib.h>  // mkdtemp
#include <unistd.h>  // geteuid

#include <filesystem>  // the env file's directory
#include <fstream>     // the env file
#include <string>      // texts
#include <vector>      // problems

#include "config/daemon_config.hpp"
#include "config/did_you_mean.hpp"

namespace procpool::tool {
namespace {

using namespace std::chrono_literals;

std::vector<std::string> problems_of(const std::string& text) {
  std::vector<std::string> out;
  for (const ConfigProblem& p : parse_config(text, "test.toml").problems) {
    out.push_back(format_problem("test.toml", p));
  }
  return out;
}

TEST(Config, AProgramAndAPoolBecomeTheirSpecs) {
  const ConfigLoad load = parse_config(R"(
[[program]]
name = "web"
command = "/bin/sh"
args = ["-c", "exec sleep 100"]
env = { A = "1", B = "two" }
cwd = "/tmp"
numprocs = 3
restart = "on-failure"
initial_backoff = "250ms"
max_backoff = "30s"
give_up_after = 5
stop_signal = "SIGINT"
stop_grace = "2s"
readiness = "tcp"
ready_port = 8080
memory_soft_limit = "256M"
memory_hard_limit = 1073741824

[[pool]]
name = "resize"
executable = "/bin/true"
min_workers = 2
max_workers = 4
max_payload = "1M"
idle_timeout = "1.5m"
max_attempts = 3
)",
                                       "test.toml");
  ASSERT_TRUE(load.ok()) << format_problem("test.toml", load.problems.front());
  ASSERT_EQ(load.config.programs.size(), 1U);
  const ProgramSpec& spec = load.config.programs[0].spec;
  EXPECT_EQ(spec.name, "web");
  EXPECT_EQ(spec.command, "/bin/sh");
  EXPECT_EQ(spec.args, (std::vector<std::string>{"-c", "exec sleep 100"}));
  EXPECT_EQ(spec.env, (std::vector<std::pair<std::string, std::string>>{{"A", "1"}, {"B", "two"}}));
  EXPECT_EQ(spec.working_directory, "/tmp");
  EXPECT_EQ(spec.numprocs, 3U);
  EXPECT_EQ(spec.restart_mode, RestartMode::OnFailure);
  EXPECT_EQ(spec.restart.initial_backoff, 250ms);
  EXPECT_EQ(spec.restart.max_backoff, 30s);
  EXPECT_EQ(spec.restart.give_up_after, 5U);
  EXPECT_EQ(spec.stop_signal, 2);
  EXPECT_EQ(spec.stop_grace, 2s);
  EXPECT_EQ(spec.readiness, ReadinessMode::TcpPort);
  EXPECT_EQ(spec.ready_port, 8080);
  EXPECT_EQ(spec.memory_soft_limit, 256ULL << 20);
  EXPECT_EQ(spec.memory_hard_limit, 1ULL << 30);
  ASSERT_EQ(load.config.pools.size(), 1U);
  const PoolConfig& pool = load.config.pools[0];
  EXPECT_EQ(pool.name, "resize");
  EXPECT_EQ(pool.options.executable, "/bin/true");
  EXPECT_EQ(pool.options.min_workers, 2U);
  EXPECT_EQ(pool.options.max_workers, 4U);
  EXPECT_EQ(pool.options.max_payload, 1ULL << 20);
  EXPECT_EQ(pool.options.idle_timeout, 90s);
  EXPECT_EQ(pool.options.max_attempts, 3U);
}

TEST(Config, WhatIsNotSetKeepsTheLibrarysDefaults) {
  const ConfigLoad load =
      parse_config("[[program]]\nname = \"a\"\ncommand = \"/bin/true\"\n", "test.toml");
  ASSERT_TRUE(load.ok());
  const ProgramSpec defaults;
  const ProgramSpec& spec = load.config.programs.at(0).spec;
  EXPECT_EQ(spec.restart_mode, defaults.restart_mode);
  EXPECT_EQ(spec.stop_grace, defaults.stop_grace);
  EXPECT_EQ(spec.restart.max_backoff, defaults.restart.max_backoff);
  EXPECT_EQ(spec.readiness, defaults.readiness);
}

TEST(Config, AnUnknownKeyIsAnErrorAtItsPlaceWithTheClosestKnownOne) {
  EXPECT_EQ(problems_of("[[program]]\nname = \"a\"\ncommand = \"/bin/true\"\nnumproc = 2\n"),
            (std::vector<std::string>{
                "test.toml:4:1: program 'a': unknown key 'numproc' (did you mean 'numprocs'?)"}));
  EXPECT_EQ(problems_of("[[pool]]\nname = \"p\"\nexecutable = \"/bin/true\"\nfrobnicate = 1\n"),
            (std::vector<std::string>{"test.toml:4:1: pool 'p': unknown key 'frobnicate'"}));
  EXPECT_EQ(problems_of("[[programs]]\nname = \"a\"\n"),
            (std::vector<std::string>{
                "test.toml:1:3: unknown top-level key 'programs' (did you mean [[program]]?)"}));
}

TEST(Config, WrongTypesAndValuesSayWhatWasExpected) {
  const std::vector<std::string> problems = problems_of(R"([[program]]
name = "a"
command = "/bin/true"
numprocs = "two"
restart = "allways"
stop_grace = 5
memory_soft_limit = "lots"
readiness = "tcp"
)");
  ASSERT_EQ(problems.size(), 5U) << ::testing::PrintToString(problems);
  EXPECT_EQ(problems[0],
            "test.toml:4:12: program 'a': numprocs must be a whole number, not a string");
  EXPECT_EQ(problems[1],
            "test.toml:5:11: program 'a': restart must be one of 'always', 'on-failure', 'never', "
            "not 'allways' (did you mean 'always'?)");
  EXPECT_NE(problems[2].find("test.toml:6:14: program 'a': stop_grace must be a duration with its "
                             "unit"),
            std::string::npos)
      << problems[2];
  EXPECT_NE(problems[3].find("test.toml:7:21: program 'a': memory_soft_limit must be a size"),
            std::string::npos)
      << problems[3];
  EXPECT_EQ(problems[4], "test.toml:8:13: program 'a': readiness = \"tcp\" needs ready_port");
}

TEST(Config, MissingRequiredKeysAndBadNames) {
  const std::vector<std::string> problems = problems_of(
      "[[program]]\ncommand = \"/bin/true\"\n[[pool]]\nname = \"has space\"\nexecutable = "
      "\"/bin/true\"\n");
  ASSERT_EQ(problems.size(), 2U) << ::testing::PrintToString(problems);
  EXPECT_EQ(problems[0], "test.toml:1:1: program #1: missing name");
  EXPECT_NE(problems[1].find("test.toml:4:8: pool 'has space': name must be"), std::string::npos)
      << problems[1];
}

TEST(Config, ACommandThatCannotRunIsReportedNow) {
  const std::vector<std::string> problems =
      problems_of("[[program]]\nname = \"a\"\ncommand = \"/nonexistent/procpool-test/cmd\"\n");
  ASSERT_EQ(problems.size(), 1U);
  EXPECT_EQ(problems[0],
            "test.toml:3:11: program 'a': cannot run '/nonexistent/procpool-test/cmd': No such "
            "file or directory");
}

TEST(Config, NamesAreUniqueAcrossProgramsAndPools) {
  const std::vector<std::string> problems = problems_of(
      "[[program]]\nname = \"x\"\ncommand = \"/bin/true\"\n[[pool]]\nname = \"x\"\nexecutable = "
      "\"/bin/true\"\n");
  EXPECT_EQ(problems,
            (std::vector<std::string>{"test.toml:4:1: the name 'x' is taken already (line 1)"}));
}

TEST(Config, DependenciesMustNameProgramsAndMakeNoCycle) {
  const std::string head = "command = \"/bin/true\"\n";
  EXPECT_EQ(problems_of("[[program]]\nname = \"web\"\n" + head + "depends_on = [\"dbb\"]\n" +
                        "[[program]]\nname = \"db\"\n" + head),
            (std::vector<std::string>{"test.toml:4:14: program 'web': depends_on names no "
                                      "program: 'dbb' (did you mean 'db'?)"}));
  EXPECT_EQ(problems_of("[[program]]\nname = \"a\"\n" + head + "depends_on = [\"a\"]\n"),
            (std::vector<std::string>{"test.toml:4:14: program 'a' depends on itself"}));
  EXPECT_EQ(
      problems_of("[[program]]\nname = \"a\"\n" + head + "depends_on = [\"b\"]\n" +
                  "[[program]]\nname = \"b\"\n" + head + "depends_on = [\"c\"]\n" +
                  "[[program]]\nname = \"c\"\n" + head + "depends_on = [\"a\"]\n"),
      (std::vector<std::string>{"test.toml:4:14: depends_on makes a cycle: a -> b -> c -> a"}));
}

TEST(Config, StartOrderPutsEachProgramAfterItsDependencies) {
  const std::string head = "command = \"/bin/true\"\n";
  const ConfigLoad load = parse_config(
      "[[program]]\nname = \"web\"\n" + head + "depends_on = [\"cache\", \"db\"]\n" +
          "[[program]]\nname = \"cache\"\n" + head + "depends_on = [\"db\"]\n" +
          "[[program]]\nname = \"db\"\n" + head + "[[program]]\nname = \"cron\"\n" + head,
      "test.toml");
  ASSERT_TRUE(load.ok());
  std::vector<std::string> order;
  for (const ProgramConfig* program : start_order(load.config)) order.push_back(program->spec.name);
  EXPECT_EQ(order, (std::vector<std::string>{"db", "cache", "web", "cron"}));
}

TEST(Config, ATomlSyntaxErrorHasItsPosition) {
  const std::vector<std::string> problems = problems_of("[[program]]\nname = \"a\nx = 1\n");
  ASSERT_EQ(problems.size(), 1U);
  EXPECT_EQ(problems[0].rfind("test.toml:2:", 0), 0U) << problems[0];
}

TEST(Config, ALogFileTakesBothStreamsWithItsRotation) {
  const ConfigLoad load = parse_config(
      "[[program]]\nname = \"a\"\ncommand = \"/bin/true\"\nlog = \"/tmp/a.log\"\n"
      "log_max_size = \"1M\"\nlog_keep = 5\n",
      "test.toml");
  ASSERT_TRUE(load.ok()) << format_problem("test.toml", load.problems.front());
  const ProgramSpec& spec = load.config.programs.at(0).spec;
  EXPECT_EQ(spec.stdout_sink.file, "/tmp/a.log");
  EXPECT_EQ(spec.stderr_sink.file, "/tmp/a.log");
  EXPECT_EQ(spec.stdout_sink.max_bytes, 1ULL << 20);
  EXPECT_EQ(spec.stdout_sink.keep, 5U);
  EXPECT_EQ(spec.stdout_sink.fd, -1);
  EXPECT_EQ(problems_of("[[program]]\nname = \"a\"\ncommand = \"/bin/true\"\nlog_keep = 2\n"),
            (std::vector<std::string>{
                "test.toml:4:12: program 'a': log_max_size and log_keep need log"}));
  const std::vector<std::string> nowhere = problems_of(
      "[[program]]\nname = \"a\"\ncommand = \"/bin/true\"\nlog = "
      "\"/nonexistent/procpool-test/a.log\"\n");
  ASSERT_EQ(nowhere.size(), 1U);
  EXPECT_NE(nowhere[0].find("cannot write log files in /nonexistent/procpool-test"),
            std::string::npos)
      << nowhere[0];
}

TEST(Config, OnGiveUpNeedsGiveUpAfter) {
  const std::string head = "[[program]]\nname = \"a\"\ncommand = \"/bin/true\"\n";
  const ConfigLoad load = parse_config(head + "give_up_after = 3\non_give_up = \"exit\"\n", "t");
  ASSERT_TRUE(load.ok());
  EXPECT_TRUE(load.config.programs.at(0).exit_on_give_up);
  EXPECT_EQ(problems_of(head + "on_give_up = \"exit\"\n"),
            (std::vector<std::string>{"test.toml:4:14: program 'a': on_give_up needs give_up_after "
                                      "(0: the program never gives up)"}));
}

TEST(DidYouMean, ClosestWordWithinATypo) {
  const std::vector<std::string_view> words{"command", "numprocs", "restart", "ready_port"};
  EXPECT_EQ(closest_word("comand", words), "command");
  EXPECT_EQ(closest_word("numporcs", words), "numprocs");  // a swap counts one
  EXPECT_EQ(closest_word("readyport", words), "ready_port");
  EXPECT_EQ(closest_word("xyz", words), std::nullopt);
  EXPECT_EQ(closest_word("restart", words), "restart");
}

// env_file: systemd's format; env overrides it; its variables count in the fingerprint that
// reload compares, and so do the section's keys.
TEST(Config, EnvFileIsReadAndEnvOverridesIt) {
  char dir[] = "/tmp/procpool-envfile-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  const std::string file = std::string(dir) + "/app.env";
  std::ofstream(file) << "# a comment\n\nexport A=1\nB = \"two words\"\nC='3'\n";
  const std::string section =
      "[[program]]\nname = \"web\"\ncommand = \"/bin/true\"\nenv_file = \"" + file +
      "\"\nenv = { C = \"env wins\" }\n";
  const ConfigLoad load = parse_config(section, "test.toml");
  ASSERT_TRUE(load.ok()) << format_problem("test.toml", load.problems.front());
  const auto& env = load.config.programs[0].spec.env;
  ASSERT_EQ(env.size(), 4U);
  EXPECT_EQ(env[0], (std::pair<std::string, std::string>{"A", "1"}));
  EXPECT_EQ(env[1], (std::pair<std::string, std::string>{"B", "two words"}));
  EXPECT_EQ(env[2], (std::pair<std::string, std::string>{"C", "3"}));
  EXPECT_EQ(env[3], (std::pair<std::string, std::string>{"C", "env wins"}));  // the last wins
  const std::string before = load.config.programs[0].fingerprint;
  std::ofstream(file) << "A=changed\n";
  EXPECT_NE(parse_config(section, "test.toml").config.programs[0].fingerprint, before);
  EXPECT_NE(parse_config(section + "numprocs = 2\n", "test.toml").config.programs[0].fingerprint,
            parse_config(section, "test.toml").config.programs[0].fingerprint);

  std::ofstream(file) << "A=1\nnot a variable\n";
  const std::vector<std::string> problems = problems_of(section);
  ASSERT_EQ(problems.size(), 1U);
  EXPECT_NE(problems[0].find("test.toml:4:12: program 'web': env_file " + file +
                             ": line 2: not KEY=VALUE"),
            std::string::npos)
      << problems[0];
  std::filesystem::remove_all(dir);
  EXPECT_NE(problems_of(section)[0].find("cannot read it: No such file or directory"),
            std::string::npos);
}

TEST(Config, ReloadKeys) {
  const ConfigLoad load = parse_config(
      "[[program]]\nname = \"web\"\ncommand = \"/bin/true\"\nmax_unavailable = 1\n"
      "ready_timeout = \"5s\"\n",
      "test.toml");
  ASSERT_TRUE(load.ok()) << format_problem("test.toml", load.problems.front());
  EXPECT_EQ(load.config.programs[0].max_unavailable, 1U);
  EXPECT_EQ(load.config.programs[0].ready_timeout, 5s);
}

TEST(Config, UserGroupAndUmask) {
  const std::string base = "[[program]]\nname = \"web\"\ncommand = \"/bin/true\"\n";
  ConfigLoad load = parse_config(base + "umask = 0o027\n", "test.toml");
  ASSERT_TRUE(load.ok());
  EXPECT_EQ(load.config.programs[0].spec.umask, 027);
  load = parse_config(base + "umask = \"0077\"\n", "test.toml");
  ASSERT_TRUE(load.ok());
  EXPECT_EQ(load.config.programs[0].spec.umask, 077);
  EXPECT_EQ(parse_config(base, "test.toml").config.programs[0].spec.umask, -1);
  const std::vector<std::string> bad = problems_of(base + "umask = \"0999\"\n");
  ASSERT_EQ(bad.size(), 1U);
  EXPECT_NE(bad[0].find("test.toml:4:9: program 'web': umask must be a file mode"),
            std::string::npos)
      << bad[0];
  if (::geteuid() == 0) {
    load = parse_config(base + "user = \"nobody\"\ngroup = \"nogroup\"\n", "test.toml");
    ASSERT_TRUE(load.ok());
    EXPECT_EQ(load.config.programs[0].spec.user, "nobody");
    EXPECT_EQ(load.config.programs[0].spec.group, "nogroup");
    const std::vector<std::string> notify =
        problems_of(base + "user = \"nobody\"\nreadiness = \"notify\"\n");
    ASSERT_EQ(notify.size(), 1U);
    EXPECT_NE(notify[0].find("readiness = \"notify\" works only for programs of the daemon's"),
              std::string::npos)
        << notify[0];
  } else {
    const std::vector<std::string> refused = problems_of(base + "user = \"nobody\"\n");
    ASSERT_EQ(refused.size(), 1U);
    EXPECT_NE(refused[0].find("user needs procpool run to run as root"), std::string::npos);
  }
}

}  // namespace
}  // namespace procpool::tool
