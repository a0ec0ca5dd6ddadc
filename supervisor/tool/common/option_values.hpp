#pragma once

// Typed values of procpool's command-line options, each with a Boost.Program_options validator
// (found by argument-dependent lookup), so that a bad value fails inside po::store() as a
// po::error naming the option and the value: every command reports it as its usage error.

#include <chrono>  // std::chrono::milliseconds
#include <string>  // tokens
#include <vector>  // tokens

#include <boost/any.hpp>  // the validators' value store

namespace procpool::tool {

// A duration option: "500ms", "2s", "1.5m", "1h" or a plain number of seconds (parse_duration).
struct Duration {
  std::chrono::milliseconds value{0};
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
