#include "process_status.hpp"

#include <signal.h>    // sigabbrev_np
#include <sys/wait.h>  // WIFSIGNALED
#include <unistd.h>    // sysconf

#include <cstdio>   // std::fopen
#include <cstring>  // std::strrchr

namespace procpool::detail {

ExitStatus ExitStatus::from_wait_status(int status) {
  ExitStatus s;
  if (WIFSIGNALED(status)) {
    s.signaled = true;
    s.signal = WTERMSIG(status);
    s.core_dumped = WCOREDUMP(status);
  } else if (WIFEXITED(status)) {
    s.code = WEXITSTATUS(status);
  }
  return s;
}

std::string ExitStatus::describe() const {
  if (!known) return "exit status unknown (another waiter in this process reaped it)";
  if (!signaled) return "exit code " + std::to_string(code);
  std::string out = "killed by signal " + std::to_string(signal);
  if (const char* name = ::sigabbrev_np(signal)) out += std::string(" (SIG") + name + ")";
  if (core_dumped) out += ", core dumped";
  return out;
}

ProcessUsage read_process_usage(int pid) {
  ProcessUsage usage;
  const std::string base = "/proc/" + std::to_string(pid);
  if (FILE* statm = std::fopen((base + "/statm").c_str(), "re")) {
    unsigned long long size = 0, resident = 0;
    if (std::fscanf(statm, "%llu %llu", &size, &resident) == 2) {
      usage.rss_bytes = resident * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
    }
    std::fclose(statm);
  }
  if (FILE* stat = std::fopen((base + "/stat").c_str(), "re")) {
    char line[1024];
    const std::size_t n = std::fread(line, 1, sizeof line - 1, stat);
    std::fclose(stat);
    line[n] = '\0';
    // Fields after the command name, which may itself contain spaces and parentheses.
    if (const char* after = std::strrchr(line, ')')) {
      unsigned long long utime = 0, stime = 0;
      // state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime
      if (std::sscanf(after + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime,
                      &stime) == 2) {
        usage.cpu_s =
            static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
      }
    }
  }
  return usage;
}

}  // namespace procpool::detail
