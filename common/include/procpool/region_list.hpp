#pragma once
#include "procpool/detail/require_cxx20.hpp"

// Named shared regions (docs/dataplane.md, "Named shared regions"): how a supervisor tells a
// worker which inherited fds are which region. PROCPOOL_REGIONS holds "NAME=FD,NAME=FD"; each FD
// is a sealed memfd (SharedRegion) inherited at that number.

#include <cstddef>      // std::size_t
#include <string>       // the variable's value
#include <string_view>  // names
#include <utility>      // std::pair
#include <vector>       // the list

#include "procpool/shared_region.hpp"

namespace procpool {

inline constexpr const char* kRegionsEnv = "PROCPOOL_REGIONS";
inline constexpr std::size_t kMaxRegions = 64;
inline constexpr std::size_t kMaxRegionName = 64;

// 1..kMaxRegionName bytes of letters, digits, '_', '-' and '.': nothing the list's syntax uses.
bool valid_region_name(std::string_view name) noexcept;

using RegionFds = std::vector<std::pair<std::string, int>>;
std::string encode_region_list(const RegionFds& regions);
// False if the text is not such a list: a bad name, a name twice, an fd that is not a
// non-negative decimal, more than kMaxRegions entries.
bool decode_region_list(std::string_view text, RegionFds& regions);

// The regions a process has mapped, by name (the pool's and each worker's).
using NamedRegions = std::vector<std::pair<std::string, SharedRegion>>;
// The one called `name`, or nullptr.
const SharedRegion* find_region(const NamedRegions& regions, std::string_view name) noexcept;

}  // namespace procpool
