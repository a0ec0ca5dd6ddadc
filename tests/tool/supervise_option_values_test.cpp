// The typed values of `procpool supervise`'s options (supervise/supervise_option_values.hpp)
// through Boost.Program_options: a good value arrives typed, a bad one fails in po::store()
// naming the option and saying what is expected.

#include "supervise/supervise_option_values.hpp"

#include <signal.h>  // SIGTERM ...

#include <string>  // messages
#include <vector>  // arguments

#include <gtest/gtest.h>
#include <boost/program_options.hpp>

#include "common/usage.hpp"

namespace {

namespace po = boost::program_options;
using namespace procpool::tool;

po::variables_map parse(const std::vector<std::string>& args) {
  po::options_description options;
  options.add_options()                                  //
      ("restart", po::value<RestartModeValue>())         //
      ("ready", po::value<ReadinessValue>())             //
      ("stop-signal", po::value<StopSignalValue>())      //
      ("env", po::value<std::vector<EnvAssignment>>());  //
  po::variables_map values;
  po::store(po::command_line_parser(args).options(options).style(kOptionStyle).run(), values);
  return values;
}

std::string error_of(const std::vector<std::string>& args) {
  try {
    parse(args);
  } catch (const po::error& e) {
    return e.what();
  }
  return "";
}

TEST(SuperviseOptionValues, RestartModes) {
  EXPECT_EQ(parse({"--restart", "always"})["restart"].as<RestartModeValue>().value,
            procpool::RestartMode::Always);
  EXPECT_EQ(parse({"--restart", "on-failure"})["restart"].as<RestartModeValue>().value,
            procpool::RestartMode::OnFailure);
  EXPECT_EQ(parse({"--restart", "never"})["restart"].as<RestartModeValue>().value,
            procpool::RestartMode::Never);
  EXPECT_EQ(error_of({"--restart", "Always"}),
            "invalid --restart 'Always': expected always, on-failure or never");
}

TEST(SuperviseOptionValues, Readiness) {
  EXPECT_EQ(parse({"--ready", "started"})["ready"].as<ReadinessValue>().mode,
            procpool::ReadinessMode::Started);
  EXPECT_EQ(parse({"--ready", "notify"})["ready"].as<ReadinessValue>().mode,
            procpool::ReadinessMode::Notify);
  const ReadinessValue tcp = parse({"--ready", "tcp:65535"})["ready"].as<ReadinessValue>();
  EXPECT_EQ(tcp.mode, procpool::ReadinessMode::TcpPort);
  EXPECT_EQ(tcp.port, 65535);
  for (const char* bad : {"tcp:", "tcp:0", "tcp:65536", "tcp:80x", "tcp:-1", "tcp", "Notify"}) {
    EXPECT_EQ(error_of({"--ready", bad}), std::string("invalid --ready '") + bad +
                                              "': expected started, notify or tcp:PORT (PORT 1 "
                                              "to 65535)")
        << bad;
  }
}

TEST(SuperviseOptionValues, StopSignalsByNameOrNumber) {
  for (const auto& [text, signal] :
       {std::pair{"TERM", SIGTERM}, std::pair{"SIGTERM", SIGTERM}, std::pair{"INT", SIGINT},
        std::pair{"HUP", SIGHUP}, std::pair{"QUIT", SIGQUIT}, std::pair{"KILL", SIGKILL},
        std::pair{"USR1", SIGUSR1}, std::pair{"SIGUSR2", SIGUSR2}, std::pair{"10", 10}}) {
    EXPECT_EQ(parse({"--stop-signal", text})["stop-signal"].as<StopSignalValue>().value, signal)
        << text;
  }
  for (const char* bad : {"term", "SIG", "0", "-15", "65", "15x", ""}) {
    EXPECT_EQ(error_of({"--stop-signal", bad}),
              std::string("invalid --stop-signal '") + bad +
                  "': expected TERM, INT, HUP, QUIT, KILL, USR1, USR2 or a signal number")
        << bad;
  }
}

TEST(SuperviseOptionValues, EnvIsRepeatableAndSplitsAtTheFirstEquals) {
  const auto env = parse({"--env", "A=1", "--env", "B=x=y", "--env", "C="})["env"]
                       .as<std::vector<EnvAssignment>>();
  ASSERT_EQ(env.size(), 3u);
  EXPECT_EQ(env[0].name, "A");
  EXPECT_EQ(env[0].value, "1");
  EXPECT_EQ(env[1].name, "B");
  EXPECT_EQ(env[1].value, "x=y");
  EXPECT_EQ(env[2].name, "C");
  EXPECT_EQ(env[2].value, "");
  EXPECT_EQ(error_of({"--env", "=1"}), "invalid --env '=1': expected NAME=VALUE");
  EXPECT_EQ(error_of({"--env", "A"}), "invalid --env 'A': expected NAME=VALUE");
}

}  // namespace
