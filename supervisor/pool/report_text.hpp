#pragma once

#include <chrono>   // milliseconds
#include <cstdint>  // std::uint64_t
#include <cstdio>   // std::snprintf
#include <string>   // the text

namespace procpool::detail {

// How the pool's error messages and crash reports write durations and sizes, so that every
// message says them the same way.
inline std::string milliseconds_text(std::chrono::milliseconds ms) {
  return std::to_string(ms.count()) + " ms";
}

inline std::string mebibytes_text(std::uint64_t bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f MiB", static_cast<double>(bytes) / (1024.0 * 1024.0));
  return text;
}

}  // namespace procpool::detail
