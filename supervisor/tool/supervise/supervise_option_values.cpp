#include "supervise/supervise_option_values.hpp"

#include <signal.h>  // SIGTERM ..., NSIG

#include <charconv>  // std::from_chars
#include <iterator>  // std::size

#include <boost/program_options/value_semantic.hpp>  // po::validators

#include "common/option_values.hpp"  // refuse_value

namespace procpool::tool {
namespace {

namespace po = boost::program_options;

struct NamedSignal {
  std::string_view name;
  int signal;
};
// The signals a program is commonly told to stop with; anything else by number.
constexpr NamedSignal kStopSignals[] = {{"TERM", SIGTERM}, {"INT", SIGINT},   {"HUP", SIGHUP},
                                        {"QUIT", SIGQUIT}, {"KILL", SIGKILL}, {"USR1", SIGUSR1},
                                        {"USR2", SIGUSR2}};

const std::string& single_token(const boost::any& store, const std::vector<std::string>& tokens) {
  po::validators::check_first_occurrence(store);
  return po::validators::get_single_string(tokens);
}

}  // namespace

std::optional<int> parse_stop_signal(std::string_view text) {
  if (text.starts_with("SIG")) text.remove_prefix(3);
  for (const NamedSignal& named : kStopSignals) {
    if (text == named.name) return named.signal;
  }
  int number = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), number);
  if (text.empty() || error != std::errc() || end != text.data() + text.size()) return {};
  if (number <= 0 || number >= NSIG) return {};
  return number;
}

const char* restart_mode_text(RestartMode mode) noexcept {
  switch (mode) {
    case RestartMode::Always:
      return "always";
    case RestartMode::OnFailure:
      return "on-failure";
    case RestartMode::Never:
      return "never";
  }
  return "?";
}

void validate(boost::any& store, const std::vector<std::string>& tokens, RestartModeValue*, int) {
  const std::string& token = single_token(store, tokens);
  for (const RestartMode mode : {RestartMode::Always, RestartMode::OnFailure, RestartMode::Never}) {
    if (token == restart_mode_text(mode)) {
      store = RestartModeValue{mode};
      return;
    }
  }
  refuse_value(token, "expected always, on-failure or never");
}

void validate(boost::any& store, const std::vector<std::string>& tokens, ReadinessValue*, int) {
  const std::string& token = single_token(store, tokens);
  if (token == "started") {
    store = ReadinessValue{ReadinessMode::Started, 0};
    return;
  }
  if (token == "notify") {
    store = ReadinessValue{ReadinessMode::Notify, 0};
    return;
  }
  const std::string_view prefix = "tcp:";
  if (token.starts_with(prefix)) {
    unsigned port = 0;
    const char* begin = token.data() + prefix.size();
    const char* end = token.data() + token.size();
    const auto [stop, error] = std::from_chars(begin, end, port);
    if (begin != end && error == std::errc() && stop == end && port >= 1 && port <= 65535) {
      store = ReadinessValue{ReadinessMode::TcpPort, static_cast<unsigned short>(port)};
      return;
    }
  }
  refuse_value(token, "expected started, notify or tcp:PORT (PORT 1 to 65535)");
}

void validate(boost::any& store, const std::vector<std::string>& tokens, StopSignalValue*, int) {
  const std::string& token = single_token(store, tokens);
  const auto signal = parse_stop_signal(token);
  if (!signal) {
    refuse_value(token, "expected TERM, INT, HUP, QUIT, KILL, USR1, USR2 or a signal number");
  }
  store = StopSignalValue{*signal};
}

// Not single_token(): --env is repeated, each occurrence one element of a vector.
void validate(boost::any& store, const std::vector<std::string>& tokens, EnvAssignment*, int) {
  const std::string& token = po::validators::get_single_string(tokens);
  const std::size_t equals = token.find('=');
  if (equals == std::string::npos || equals == 0) {
    refuse_value(token, "expected NAME=VALUE");
  }
  store = EnvAssignment{token.substr(0, equals), token.substr(equals + 1)};
}

}  // namespace procpool::tool
