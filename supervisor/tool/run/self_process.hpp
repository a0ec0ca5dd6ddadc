#pragma once

// The daemon's own process, for the standard process_* metrics (Prometheus' client libraries
// export the same names): read from /proc/self at each scrape.

#include <cstdint>  // sizes

namespace procpool::tool {

struct SelfProcess {
  double cpu_seconds = 0;   // user + system
  double start_unix_s = 0;  // since the epoch
  std::uint64_t rss_bytes = 0;
  std::uint64_t virtual_bytes = 0;
  std::uint64_t open_fds = 0;
  std::uint64_t max_fds = 0;  // RLIMIT_NOFILE's soft limit
};

// What could not be read stays 0.
SelfProcess read_self_process();

}  // namespace procpool::tool
