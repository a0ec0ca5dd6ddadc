// procpool-soak: the chaos workload (chaos.hpp) for as long as asked, for scripts/soak.sh.
//
//   procpool-soak CRASHY_WORKER MINUTES [--spin-us N] [--workers N] [--seed N]
//
// Prints the report (tasks, kills, restarts, lost, duplicated, supervisor RSS at start and end,
// anomalies) and exits 0 when the run was clean, 1 when it was not, 2 on usage errors.
#include <cstdio>     // std::fprintf, std::fputs
#include <cstdlib>    // std::strtoull
#include <exception>  // std::exception
#include <string>     // std::string

#include "chaos.hpp"

namespace {

int usage() {
  std::fputs("usage: procpool-soak CRASHY_WORKER MINUTES [--spin-us N] [--workers N] [--seed N]\n",
             stderr);
  return 2;
}

bool number(const char* text, unsigned long long& value) {
  char* end = nullptr;
  value = std::strtoull(text, &end, 10);
  return end != text && *end == '\0';
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) return usage();
  procpool::chaos::ChaosConfig config;
  config.worker = argv[1];
  unsigned long long minutes = 0;
  if (!number(argv[2], minutes) || minutes == 0) return usage();
  config.duration = std::chrono::seconds(minutes * 60);
  config.deadline = config.duration + std::chrono::minutes(5);
  for (int i = 3; i < argc; i += 2) {
    if (i + 1 >= argc) return usage();
    const std::string flag = argv[i];
    unsigned long long value = 0;
    if (!number(argv[i + 1], value)) return usage();
    if (flag == "--spin-us") {
      config.spin_us = static_cast<unsigned>(value);
    } else if (flag == "--workers" && value > 0) {
      config.workers = static_cast<unsigned>(value);
    } else if (flag == "--seed") {
      config.seed = value;
    } else {
      return usage();
    }
  }
  try {
    const procpool::chaos::ChaosReport report = procpool::chaos::run_chaos(config);
    std::fputs(report.text().c_str(), stdout);
    std::printf("result %s\n", report.clean() ? "clean" : "ANOMALIES");
    return report.clean() ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "procpool-soak: %s\n", e.what());
    return 1;
  }
}
