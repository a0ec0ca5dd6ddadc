#include "group_usage.hpp"

#include <dirent.h>  // opendir, readdir
#include <unistd.h>  // sysconf

#include <cstdio>   // std::fopen
#include <cstdlib>  // std::strtol
#include <cstring>  // std::strrchr
#include <string>   // std::string
#include <vector>   // the tree's processes

namespace procpool::detail {
namespace {

struct StatFields {
  char state = '?';
  int pgrp = 0;
  unsigned long long utime = 0, stime = 0;
  long long rss_pages = 0;
};

bool read_stat(const char* pid, StatFields& out) {
  const std::string path = std::string("/proc/") + pid + "/stat";
  FILE* file = std::fopen(path.c_str(), "re");
  if (file == nullptr) return false;
  char line[1024];
  const std::size_t n = std::fread(line, 1, sizeof line - 1, file);
  std::fclose(file);
  line[n] = '\0';
  // The command name may itself contain spaces and parentheses: fields start after the last ')'.
  const char* after = std::strrchr(line, ')');
  if (after == nullptr) return false;
  // state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime cutime
  // cstime priority nice num_threads itrealvalue starttime vsize rss
  return std::sscanf(after + 2,
                     "%c %*d %d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %*d "
                     "%*d %*u %*u %lld",
                     &out.state, &out.pgrp, &out.utime, &out.stime, &out.rss_pages) == 5;
}

template <class F>
void for_each_pid(F&& f) {
  DIR* dir = ::opendir("/proc");
  if (dir == nullptr) return;
  while (const dirent* entry = ::readdir(dir)) {
    if (entry->d_name[0] < '0' || entry->d_name[0] > '9') continue;
    if (!f(entry->d_name)) break;
  }
  ::closedir(dir);
}

}  // namespace

ProcessUsage read_group_usage(int pgid) {
  ProcessUsage usage;
  const auto page = static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
  const auto ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
  for_each_pid([&](const char* pid) {
    StatFields fields;
    if (read_stat(pid, fields) && fields.pgrp == pgid) {
      if (fields.rss_pages > 0)
        usage.rss_bytes += static_cast<std::uint64_t>(fields.rss_pages) * page;
      usage.cpu_s += static_cast<double>(fields.utime + fields.stime) / ticks;
    }
    return true;
  });
  return usage;
}

ProcessUsage read_tree_usage(int pid) {
  constexpr std::size_t kMaxProcesses = 4096;
  ProcessUsage usage;
  const auto page = static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
  const auto ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
  std::vector<int> todo{pid};
  std::size_t seen = 0;
  while (!todo.empty() && seen < kMaxProcesses) {
    const int next = todo.back();
    todo.pop_back();
    ++seen;
    const std::string id = std::to_string(next);
    StatFields fields;
    if (!read_stat(id.c_str(), fields)) continue;
    if (fields.rss_pages > 0)
      usage.rss_bytes += static_cast<std::uint64_t>(fields.rss_pages) * page;
    usage.cpu_s += static_cast<double>(fields.utime + fields.stime) / ticks;
    // Every thread's children: a child belongs to the thread that forked it.
    const std::string tasks = "/proc/" + id + "/task";
    DIR* dir = ::opendir(tasks.c_str());
    if (dir == nullptr) continue;
    while (const dirent* entry = ::readdir(dir)) {
      if (entry->d_name[0] < '0' || entry->d_name[0] > '9') continue;
      FILE* file = std::fopen((tasks + "/" + entry->d_name + "/children").c_str(), "re");
      if (file == nullptr) continue;
      for (int child = 0; std::fscanf(file, "%d", &child) == 1;) todo.push_back(child);
      std::fclose(file);
    }
    ::closedir(dir);
  }
  return usage;
}

bool group_has_members_besides(int pgid, int except) {
  bool found = false;
  for_each_pid([&](const char* pid) {
    StatFields fields;
    // A zombie holds no pipe and cannot be signalled; whoever inherited it reaps it.
    if (std::strtol(pid, nullptr, 10) != except && read_stat(pid, fields) && fields.pgrp == pgid &&
        fields.state != 'Z' && fields.state != 'X') {
      found = true;
      return false;
    }
    return true;
  });
  return found;
}

}  // namespace procpool::detail
