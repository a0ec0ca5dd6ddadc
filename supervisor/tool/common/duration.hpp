#pragma once

// Durations on procpool's command line (--timeout, --grace) and in its messages.

#include <chrono>    // std::chrono::milliseconds
#include <optional>  // parse results
#include <string>    // messages
#include <string_view>

namespace procpool::tool {

// "500ms", "2s", "1.5m", "1h", or a plain number of seconds; 0 = none. A positive duration
// below 1 ms rounds up to 1 ms (0 would mean no limit). Nothing for anything else, and for
// more than about 115 days.
std::optional<std::chrono::milliseconds> parse_duration(std::string_view text);

// 250 ms -> "250 ms", 30000 ms -> "30 s", 1500 ms -> "1.5 s"
std::string duration_text(std::chrono::milliseconds duration);

}  // namespace procpool::tool
