#include "common/text_format.hpp"

#include <cstdio>   // std::snprintf
#include <cstring>  // std::strerror

namespace procpool::tool {
namespace {

constexpr std::string_view kContinuationIndent = "    ";

}  // namespace

std::string errno_text(int error) { return std::strerror(error); }

std::string group_digits(std::uint64_t value) {
  // Built by appending, never by inserting into the string itself: GCC 12 at -O3 reports a
  // spurious overlap (-Wrestrict) in the in-place insert.
  const std::string digits = std::to_string(value);
  std::string grouped;
  grouped.reserve(digits.size() + digits.size() / 3);
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i != 0 && (digits.size() - i) % 3 == 0) grouped.push_back(',');
    grouped.push_back(digits[i]);
  }
  return grouped;
}

std::string short_rate(double value) {
  char text[32];
  if (value >= 1e6) {
    std::snprintf(text, sizeof text, "%.2fM", value / 1e6);
  } else if (value >= 1e3) {
    std::snprintf(text, sizeof text, "%.1fk", value / 1e3);
  } else {
    std::snprintf(text, sizeof text, "%.0f", value);
  }
  return text;
}

std::string clock_time(double seconds) {
  const auto total = static_cast<std::uint64_t>(seconds + 0.5);
  char text[48];
  if (total >= 3600) {
    std::snprintf(text, sizeof text, "%llu:%02llu:%02llu",
                  static_cast<unsigned long long>(total / 3600),
                  static_cast<unsigned long long>(total / 60 % 60),
                  static_cast<unsigned long long>(total % 60));
  } else {
    std::snprintf(text, sizeof text, "%llu:%02llu", static_cast<unsigned long long>(total / 60),
                  static_cast<unsigned long long>(total % 60));
  }
  return text;
}

std::string indent_continuation(std::string_view text) {
  while (!text.empty() && text.back() == '\n') text.remove_suffix(1);
  std::string out;
  out.reserve(text.size() + 16);
  for (const char c : text) {
    out += c;
    if (c == '\n') out += kContinuationIndent;
  }
  return out;
}

}  // namespace procpool::tool
