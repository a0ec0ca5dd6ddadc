#pragma once

// The Prometheus text exposition format, version 0.0.4 (docs/metrics.md): families of samples,
// each family announced once by its # HELP and # TYPE lines, then its samples with their
// labels. Label values are escaped (backslash, double quote, newline); values are printed so
// that they parse back to the same double (+Inf, -Inf and NaN as the format spells them).

#include <cstdint>           // counts
#include <initializer_list>  // labels
#include <string>
#include <string_view>
#include <utility>  // std::pair

namespace procpool::tool {

using MetricLabels = std::initializer_list<std::pair<std::string_view, std::string_view>>;

class MetricsExposition {
 public:
  enum class Type : std::uint8_t { Counter, Gauge, Histogram };

  // Starts a family; its samples follow (a family must not be started twice).
  void family(std::string_view name, Type type, std::string_view help);
  // One sample of the current family; `suffix` for a histogram's _bucket, _sum, _count.
  void sample(MetricLabels labels, double value, std::string_view suffix = "");
  // A histogram's series: cumulative counts at `bounds` (microseconds, printed in seconds as
  // its "le" label), then +Inf, _sum (seconds) and _count.
  template <class Bounds, class Counts>
  void histogram_us(MetricLabels labels, const Bounds& bounds_us, const Counts& cumulative,
                    double sum_us, std::uint64_t count) {
    for (std::size_t i = 0; i < bounds_us.size(); ++i) {
      bucket(labels, format_value(bounds_us[i] / 1e6), static_cast<double>(cumulative[i]));
    }
    bucket(labels, "+Inf", static_cast<double>(count));
    sample(labels, sum_us / 1e6, "_sum");
    sample(labels, static_cast<double>(count), "_count");
  }

  const std::string& text() const noexcept { return text_; }
  static std::string format_value(double value);

 private:
  void bucket(MetricLabels labels, const std::string& le, double value);
  void labels_text(MetricLabels labels, std::string_view le);

  std::string text_;
  std::string current_;  // the current family's name
};

}  // namespace procpool::tool
