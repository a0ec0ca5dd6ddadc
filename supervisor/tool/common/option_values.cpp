#include "common/option_values.hpp"

#include <sched.h>   // sched_getaffinity
#include <unistd.h>  // sysconf

#include <charconv>  // std::from_chars
#include <optional>  // parse results

#include <boost/program_options/errors.hpp>          // po::error_with_option_name
#include <boost/program_options/value_semantic.hpp>  // po::validators

#include "common/duration.hpp"

namespace procpool::tool {
namespace {

namespace po = boost::program_options;

std::optional<unsigned> parse_unsigned(const std::string& text, unsigned min, unsigned max) {
  unsigned value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || error != std::errc() || end != text.data() + text.size()) return {};
  if (value < min || value > max) return {};
  return value;
}

}  // namespace

// The option's name (%canonical_option%) is filled in by po::store(), which knows which option
// the value was given to.
void refuse_value(const std::string& token, const std::string& expected) {
  po::error_with_option_name error("invalid %canonical_option% '%value%': " + expected);
  error.set_substitute("value", token);
  throw error;
}

unsigned parse_count(const boost::any& store, const std::vector<std::string>& tokens, unsigned min,
                     unsigned max) {
  po::validators::check_first_occurrence(store);
  const std::string& token = po::validators::get_single_string(tokens);
  const auto value = parse_unsigned(token, min, max);
  if (!value) {
    refuse_value(token,
                 "expected a whole number, " + std::to_string(min) + " to " + std::to_string(max));
  }
  return *value;
}

void validate(boost::any& store, const std::vector<std::string>& tokens, Duration*, int) {
  po::validators::check_first_occurrence(store);
  const std::string& token = po::validators::get_single_string(tokens);
  const auto duration = parse_duration(token);
  if (!duration) {
    refuse_value(token, "expected a duration such as 500ms, 2s or 1m (a plain number is seconds)");
  }
  store = Duration{*duration};
}

void validate(boost::any& store, const std::vector<std::string>& tokens, WorkerCount*, int) {
  po::validators::check_first_occurrence(store);
  const std::string& token = po::validators::get_single_string(tokens);
  if (token == "auto") {
    store = WorkerCount{cpu_count()};
    return;
  }
  const auto value = parse_unsigned(token, 1, WorkerCount::kMax);
  if (!value) {
    refuse_value(token, "expected a whole number, 1 to " + std::to_string(WorkerCount::kMax) +
                            ", or auto (the number of CPUs)");
  }
  store = WorkerCount{*value};
}

std::optional<std::uint64_t> parse_byte_size(std::string_view text) {
  std::uint64_t value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || error != std::errc()) return {};
  const std::string_view unit = text.substr(static_cast<std::size_t>(end - text.data()));
  unsigned shift = 0;
  if (unit.size() > 1) return {};
  if (unit.size() == 1) {
    switch (unit[0]) {
      case 'k':
      case 'K':
        shift = 10;
        break;
      case 'm':
      case 'M':
        shift = 20;
        break;
      case 'g':
      case 'G':
        shift = 30;
        break;
      case 't':
      case 'T':
        shift = 40;
        break;
      default:
        return {};
    }
  }
  if (shift != 0 && value > (~std::uint64_t{0} >> shift)) return {};
  return value << shift;
}

void validate(boost::any& store, const std::vector<std::string>& tokens, ByteSize*, int) {
  po::validators::check_first_occurrence(store);
  const std::string& token = po::validators::get_single_string(tokens);
  const auto bytes = parse_byte_size(token);
  if (!bytes) {
    refuse_value(token,
                 "expected a size such as 512K, 64M or 1G (powers of 1024; a plain number "
                 "is bytes)");
  }
  store = ByteSize{*bytes};
}

unsigned cpu_count() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) {
    return static_cast<unsigned>(CPU_COUNT(&set));
  }
  const long online = ::sysconf(_SC_NPROCESSORS_ONLN);
  return online > 0 ? static_cast<unsigned>(online) : 1;
}

}  // namespace procpool::tool
