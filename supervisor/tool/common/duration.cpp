#include "common/duration.hpp"

#include <charconv>  // std::from_chars
#include <cmath>     // std::ceil
#include <cstdio>    // std::snprintf

namespace procpool::tool {

using std::chrono::milliseconds;

std::optional<milliseconds> parse_duration(std::string_view text) {
  const std::size_t digits = text.find_first_not_of("0123456789.");
  const std::string_view number = text.substr(0, digits);
  const std::string_view unit = digits == std::string_view::npos ? "" : text.substr(digits);
  if (number.empty() || number.find_first_of("0123456789") == std::string_view::npos) return {};
  double value = 0;
  const auto [end, error] = std::from_chars(number.data(), number.data() + number.size(), value);
  if (error != std::errc() || end != number.data() + number.size()) return {};
  double per_unit_ms = 0;
  if (unit.empty() || unit == "s") {
    per_unit_ms = 1e3;
  } else if (unit == "ms") {
    per_unit_ms = 1;
  } else if (unit == "m") {
    per_unit_ms = 60e3;
  } else if (unit == "h") {
    per_unit_ms = 3600e3;
  } else {
    return {};
  }
  const double ms = std::ceil(value * per_unit_ms);
  if (!(ms >= 0) || ms > 1e10) return {};  // about 115 days
  return milliseconds(static_cast<milliseconds::rep>(ms));
}

std::string duration_text(milliseconds duration) {
  const auto ms = duration.count();
  if (ms < 1000) return std::to_string(ms) + " ms";
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + " s";
  char text[48];
  std::snprintf(text, sizeof text, "%.3f", static_cast<double>(ms) / 1e3);
  std::string out = text;
  while (out.back() == '0') out.pop_back();
  return out + " s";
}

}  // namespace procpool::tool
