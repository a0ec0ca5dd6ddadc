#pragma once

// One scale for the load-sensitive thresholds of the tests ("answers within 1 s", "depth above
// 32 after tiny tasks"): a sanitizer build runs the same code several times slower, so its
// thresholds are scaled here, in one place, instead of being loosened test by test. Only bounds
// that a slower machine would miss are scaled; a lower bound that the protocol guarantees (a
// wait lasts at least its timeout) is not.

#include <chrono>    // std::chrono::duration
#include <concepts>  // std::integral, std::floating_point

namespace procpool::test {

#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool kAddressSanitizer = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
inline constexpr bool kAddressSanitizer = true;
#else
inline constexpr bool kAddressSanitizer = false;
#endif
#else
inline constexpr bool kAddressSanitizer = false;
#endif

#if defined(__SANITIZE_THREAD__)
inline constexpr bool kThreadSanitizer = true;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
inline constexpr bool kThreadSanitizer = true;
#else
inline constexpr bool kThreadSanitizer = false;
#endif
#else
inline constexpr bool kThreadSanitizer = false;
#endif

// How many times longer a load-sensitive step may take in this build: TSan instruments every
// memory access and synchronisation, ASan only memory accesses.
inline constexpr unsigned kTimingScale = kThreadSanitizer ? 5 : kAddressSanitizer ? 2 : 1;

// A load-sensitive time bound, scaled for this build.
template <class Rep, class Period>
constexpr auto scaled(std::chrono::duration<Rep, Period> bound) {
  return bound * kTimingScale;
}

// A load-sensitive count or amount (a time in plain numbers, a number of retries), scaled for
// this build.
template <class T>
requires std::integral<T> || std::floating_point<T>
constexpr T scaled(T bound) { return static_cast<T>(bound * static_cast<T>(kTimingScale)); }

}  // namespace procpool::test
