#pragma once

// Lists of input line numbers as a user reads them: "lines 3-5, 9, 12-".

#include <cstdint>  // std::uint64_t
#include <string>
#include <vector>

namespace procpool::tool {

// No open end (see line_ranges).
inline constexpr std::uint64_t kNoLine = ~std::uint64_t{0};

// Sorted 0-based line numbers -> "lines 3-5, 9" (counted from 1). With `open_from` (0-based,
// or kNoLine), "N-" stands for line N and every line after it, merged with a range that ends
// just before. A single line reads "line 7".
std::string line_ranges(const std::vector<std::uint64_t>& lines, std::uint64_t open_from);

}  // namespace procpool::tool
