#pragma once

// The assertion of the fuzz targets: a property that does not hold prints what broke and aborts.
// libFuzzer reports the abort as a crash and saves the input as a crash-* artifact, which
// reproduces the failure when passed back to the target (docs/testing.md).

#include <cstdio>   // std::fprintf
#include <cstdlib>  // std::abort

namespace procpool::fuzz {

[[noreturn]] inline void check_failed(const char* condition, const char* file, int line) {
  std::fprintf(stderr, "%s:%d: fuzz check failed: %s\n", file, line, condition);
  std::abort();
}

}  // namespace procpool::fuzz

// Active in every build type (the fuzz preset defines NDEBUG, so assert() would vanish).
#define PROCPOOL_FUZZ_CHECK(condition) \
  ((condition) ? void(0) : ::procpool::fuzz::check_failed(#condition, __FILE__, __LINE__))
