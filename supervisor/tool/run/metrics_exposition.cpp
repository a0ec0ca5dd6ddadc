#include "run/metrics_exposition.hpp"

#include <charconv>  // std::to_chars
#include <cmath>     // std::isnan, std::isinf

namespace procpool::tool {

void MetricsExposition::family(std::string_view name, Type type, std::string_view help) {
  current_ = name;
  text_.append("# HELP ").append(name).append(" ").append(help).push_back('\n');
  text_.append("# TYPE ")
      .append(name)
      .append(type == Type::Counter ? " counter"
              : type == Type::Gauge ? " gauge"
                                    : " histogram")
      .push_back('\n');
}

std::string MetricsExposition::format_value(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  char digits[64];
  // The shortest text that reads back as the same double.
  const auto result = std::to_chars(digits, digits + sizeof digits, value);
  return std::string(digits, result.ptr);
}

void MetricsExposition::labels_text(MetricLabels labels, std::string_view le) {
  if (labels.size() == 0 && le.empty()) return;
  text_.push_back('{');
  bool first = true;
  const auto label = [&](std::string_view name, std::string_view value) {
    if (!first) text_.push_back(',');
    first = false;
    text_.append(name).append("=\"");
    for (const char c : value) {
      if (c == '\\') {
        text_.append("\\\\");
      } else if (c == '"') {
        text_.append("\\\"");
      } else if (c == '\n') {
        text_.append("\\n");
      } else {
        text_.push_back(c);
      }
    }
    text_.push_back('"');
  };
  for (const auto& [name, value] : labels) label(name, value);
  if (!le.empty()) label("le", le);
  text_.push_back('}');
}

void MetricsExposition::sample(MetricLabels labels, double value, std::string_view suffix) {
  text_.append(current_).append(suffix);
  labels_text(labels, "");
  text_.append(" ").append(format_value(value)).push_back('\n');
}

void MetricsExposition::bucket(MetricLabels labels, const std::string& le, double value) {
  text_.append(current_).append("_bucket");
  labels_text(labels, le);
  text_.append(" ").append(format_value(value)).push_back('\n');
}

}  // namespace procpool::tool
