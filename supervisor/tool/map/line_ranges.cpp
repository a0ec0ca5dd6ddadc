#include "map/line_ranges.hpp"

#include <cstddef>  // std::size_t

namespace procpool::tool {

std::string line_ranges(const std::vector<std::uint64_t>& lines, std::uint64_t open_from) {
  std::string out;
  std::size_t items = 0;
  auto add = [&](std::uint64_t first, std::uint64_t last, bool open) {
    out += items++ == 0 ? "" : ", ";
    out += std::to_string(first + 1);
    if (open) {
      out += "-";
    } else if (last != first) {
      // Two appends, not "-" + std::to_string(...): GCC 12 at -O3 reports a spurious overlap
      // (-Wrestrict) in that concatenation.
      out += '-';
      out += std::to_string(last + 1);
    }
  };
  std::size_t i = 0;
  while (i < lines.size()) {
    const std::uint64_t first = lines[i];
    std::uint64_t last = first;
    while (i + 1 < lines.size() && lines[i + 1] <= last + 1) last = lines[++i];
    ++i;
    if (i == lines.size() && open_from == last + 1) {
      add(first, last, true);
      open_from = kNoLine;
    } else {
      add(first, last, false);
    }
  }
  if (open_from != kNoLine) add(open_from, open_from, true);
  const bool one_line = lines.size() == 1 && out.find('-') == std::string::npos;
  return (one_line ? "line " : "lines ") + out;
}

}  // namespace procpool::tool
