#include "run/self_process.hpp"

#include <sys/resource.h>  // getrlimit
#include <unistd.h>        // sysconf

#include <filesystem>  // /proc/self/fd
#include <fstream>     // /proc files
#include <sstream>     // fields
#include <string>

namespace procpool::tool {
namespace {

// Boot time, in seconds since the epoch: /proc/stat's btime.
double boot_time() {
  std::ifstream in("/proc/stat");
  std::string key;
  while (in >> key) {
    if (key == "btime") {
      double value = 0;
      in >> value;
      return value;
    }
    in.ignore(1 << 16, '\n');
  }
  return 0;
}

}  // namespace

SelfProcess read_self_process() {
  SelfProcess self;
  std::ifstream in("/proc/self/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), {});
  // The command name may hold spaces and parentheses: the fields start after the last ')'.
  const std::size_t close = stat.rfind(')');
  if (close != std::string::npos) {
    std::istringstream fields(stat.substr(close + 2));
    std::string field;
    // Fields from 3 (state): utime is 14, stime 15, starttime 22, vsize 23, rss 24.
    double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
    if (ticks <= 0) ticks = 100;
    for (int number = 3; fields >> field && number <= 24; ++number) {
      if (number == 14 || number == 15) self.cpu_seconds += std::stod(field) / ticks;
      if (number == 22) self.start_unix_s = boot_time() + std::stod(field) / ticks;
      if (number == 23) self.virtual_bytes = std::stoull(field);
      if (number == 24) {
        self.rss_bytes = std::stoull(field) * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
      }
    }
  }
  std::error_code error;
  for (auto it = std::filesystem::directory_iterator("/proc/self/fd", error);
       !error && it != std::filesystem::directory_iterator(); it.increment(error)) {
    ++self.open_fds;
  }
  if (self.open_fds > 0) --self.open_fds;  // the iterator's own
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) == 0) self.max_fds = limit.rlim_cur;
  return self;
}

}  // namespace procpool::tool
