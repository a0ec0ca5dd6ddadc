#pragma once

// Numbers, times and multi-line texts as procpool's commands show them on standard error.

#include <cstdint>      // std::uint64_t
#include <string>       // the texts
#include <string_view>  // std::string_view

namespace procpool::tool {

// strerror(error), as a string the caller may keep.
std::string errno_text(int error);

// 1234567 -> "1,234,567"
std::string group_digits(std::uint64_t value);

// 1234567.0 -> "1.23M", 1234.0 -> "1.2k", 12.0 -> "12"
std::string short_rate(double value);

// 3725 s -> "1:02:05", 65 s -> "1:05"
std::string clock_time(double seconds);

// `text` for standard error: trailing newlines dropped, every line after the first indented, so
// that a multi-line message (a crash report with the worker's last stderr lines) reads as one
// item among the others.
std::string indent_continuation(std::string_view text);

}  // namespace procpool::tool
