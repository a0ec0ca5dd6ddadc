#pragma once
#include "procpool/detail/require_cxx20.hpp"

#include <cstddef>  // std::size_t

namespace procpool {

// The unit of false sharing on every x86-64 and AArch64 part we run on. A named constant, not
// std::hardware_destructive_interference_size: that one depends on compiler flags, and both
// processes mapping a segment must agree on its layout byte for byte.
inline constexpr std::size_t kCacheLineSize = 64;

}  // namespace procpool
