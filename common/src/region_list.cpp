#include "procpool/region_list.hpp"

#include <charconv>  // std::from_chars

namespace procpool {

bool valid_region_name(std::string_view name) noexcept {
  if (name.empty() || name.size() > kMaxRegionName) return false;
  for (const char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '-' || c == '.';
    if (!ok) return false;
  }
  return true;
}

std::string encode_region_list(const RegionFds& regions) {
  std::string out;
  for (const auto& [name, fd] : regions) {
    if (!out.empty()) out += ',';
    out += name;
    out += '=';
    out += std::to_string(fd);
  }
  return out;
}

bool decode_region_list(std::string_view text, RegionFds& regions) {
  regions.clear();
  while (!text.empty()) {
    const std::size_t comma = text.find(',');
    const std::string_view entry = text.substr(0, comma);
    text = comma == std::string_view::npos ? std::string_view() : text.substr(comma + 1);
    if (comma != std::string_view::npos && text.empty()) return false;  // a trailing comma
    const std::size_t equals = entry.find('=');
    if (equals == std::string_view::npos) return false;
    const std::string_view name = entry.substr(0, equals), number = entry.substr(equals + 1);
    if (!valid_region_name(name) || number.empty()) return false;
    int fd = -1;
    const auto [end, error] = std::from_chars(number.data(), number.data() + number.size(), fd);
    if (error != std::errc() || end != number.data() + number.size() || fd < 0) return false;
    for (const auto& existing : regions) {
      if (existing.first == name) return false;
    }
    if (regions.size() == kMaxRegions) return false;
    regions.emplace_back(std::string(name), fd);
  }
  return true;
}

const SharedRegion* find_region(const NamedRegions& regions, std::string_view name) noexcept {
  for (const auto& [region_name, region] : regions) {
    if (region_name == name) return &region;
  }
  return nullptr;
}

}  // namespace procpool
