#pragma once

// Typed values of procpool's command-line options, each with a Boost.Program_options validator
// (found by argument-dependent lookup), so that a bad value fails inside po::store() as a
// po::error naming the option and the value: every command reports it as its usage error.

#include <chrono>    // std::chrono::milliseconds
#include <cstdint>   // std::uint64_t
#include <optional>  // parse_byte_size
#include <string>    // tokens
#include <string_view>
#include <vector>  // tokens

#include <boost/any.hpp>  // the validators' value store

namespace procpool::tool {

// A duration option: "500ms", "2s", "1.5m", "1h" or a plain number of seconds (parse_duration).
struct Duration {
  std::chrono::milliseconds value{0};
};

// A size in bytes: a whole number, optionally followed by K, M, G or T (powers of 1024, either
// case): "512K", "64M", "1G", "4096".
struct ByteSize {
  std::uint64_t value = 0;
};

// A whole number from Min to Max. A sign, a fraction or trailing text is refused (a plain
// po::value<unsigned> would read "-1" as 4294967295).
template <unsigned Min, unsigned Max>
struct Count {
  static_assert(Min <= Max);
  unsigned value = Min;
};

// A number of worker processes: 1 to 1024, or "auto" for the number of CPUs this process may
// run on.
struct WorkerCount {
  static constexpr unsigned kMax = 1024;
  unsigned value = 0;  // 0 until parsed; "auto" resolves at once
};

void validate(boost::any& store, const std::vector<std::string>& tokens, Duration*, int);
void validate(boost::any& store, const std::vector<std::string>& tokens, WorkerCount*, int);
void validate(boost::any& store, const std::vector<std::string>& tokens, ByteSize*, int);

// ByteSize's parse: nothing for a sign, a fraction, an unknown unit or more than 2^64 - 1 bytes.
std::optional<std::uint64_t> parse_byte_size(std::string_view text);

// Throws the po::error a validator throws for a bad value: "invalid --OPTION 'TOKEN': EXPECTED"
// (po::store() fills in the option's name). For the validators of every command's own types.
[[noreturn]] void refuse_value(const std::string& token, const std::string& expected);

// The Count validator's work, shared by every instantiation. Throws the po::error that names
// the option.
unsigned parse_count(const boost::any& store, const std::vector<std::string>& tokens, unsigned min,
                     unsigned max);

template <unsigned Min, unsigned Max>
void validate(boost::any& store, const std::vector<std::string>& tokens, Count<Min, Max>*, int) {
  store = Count<Min, Max>{parse_count(store, tokens, Min, Max)};
}

// The CPUs this process may run on (its affinity mask), at least 1.
unsigned cpu_count();

}  // namespace procpool::tool
