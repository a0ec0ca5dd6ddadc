#pragma once

// The typed values of `procpool supervise`'s own options, each with a Boost.Program_options
// validator (found by argument-dependent lookup) that refuses a bad value inside po::store(),
// naming the option, like the shared ones in common/option_values.hpp.

#include <optional>  // parse results
#include <string>    // tokens, names
#include <string_view>
#include <vector>  // tokens

#include <boost/any.hpp>  // the validators' value store

#include "procpool/program_spec.hpp"  // RestartMode, ReadinessMode

namespace procpool::tool {

// --restart always|on-failure|never
struct RestartModeValue {
  RestartMode value = RestartMode::Always;
};

// --ready started|notify|tcp:PORT
struct ReadinessValue {
  ReadinessMode mode = ReadinessMode::Started;
  unsigned short port = 0;  // TcpPort
};

// --stop-signal TERM, INT, HUP, QUIT, KILL, USR1, USR2 (with or without "SIG"), or a number
struct StopSignalValue {
  int value = 0;
};

// --env NAME=VALUE (VALUE may be empty and may hold '=')
struct EnvAssignment {
  std::string name;
  std::string value;
};

void validate(boost::any& store, const std::vector<std::string>& tokens, RestartModeValue*, int);
void validate(boost::any& store, const std::vector<std::string>& tokens, ReadinessValue*, int);
void validate(boost::any& store, const std::vector<std::string>& tokens, StopSignalValue*, int);
void validate(boost::any& store, const std::vector<std::string>& tokens, EnvAssignment*, int);

// The signal a --stop-signal token names, or nothing.
std::optional<int> parse_stop_signal(std::string_view text);

// "always", "on-failure", "never"
const char* restart_mode_text(RestartMode mode) noexcept;

}  // namespace procpool::tool
