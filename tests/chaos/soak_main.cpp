// procpool-soak: the chaos workload (chaos.hpp), for scripts/soak.sh.
//
//   procpool-soak CRASHY_WORKER (--tasks N | --minutes M) [--spin-us N] [--workers N]
//                 [--kill-min-ms N] [--kill-max-ms N] [--max-attempts N] [--seed N]
//                 [--no-baseline]
//
// --tasks runs N tasks with kills, after the same N without kills (unless --no-baseline), and
// reports both wall times and their ratio; --minutes runs with kills for that long. Prints the
// report (tasks, kills, restarts, retried, failed, lost, duplicated, supervisor RSS, wall times,
// anomalies) and exits 0 when the run was clean (and, with a baseline, the ratio at most
// kMaxRatio), 1 when it was not, 2 on usage errors.
#include <cstdio>     // std::fprintf, std::fputs
#include <cstdlib>    // std::strtoull
#include <exception>  // std::exception
#include <string>     // std::string

#include "chaos.hpp"

namespace {

// The wall time with kills may be at most this many times the wall time without (issue 10).
constexpr double kMaxRatio = 1.3;

int usage() {
  std::fputs(
      "usage: procpool-soak CRASHY_WORKER (--tasks N | --minutes M) [--spin-us N] [--workers N]\n"
      "                     [--kill-min-ms N] [--kill-max-ms N] [--max-attempts N] [--seed N]\n"
      "                     [--no-baseline]\n",
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
  if (argc < 2) return usage();
  procpool::chaos::ChaosConfig config;
  config.worker = argv[1];
  bool baseline = true;
  for (int i = 2; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--no-baseline") {
      baseline = false;
      continue;
    }
    unsigned long long value = 0;
    if (i + 1 >= argc || !number(argv[i + 1], value)) return usage();
    ++i;
    if (flag == "--tasks" && value > 0) {
      config.tasks = value;
    } else if (flag == "--minutes" && value > 0) {
      config.duration = std::chrono::seconds(value * 60);
    } else if (flag == "--spin-us") {
      config.spin_us = static_cast<unsigned>(value);
    } else if (flag == "--workers" && value > 0) {
      config.workers = static_cast<unsigned>(value);
    } else if (flag == "--kill-min-ms") {
      config.kill_min = std::chrono::milliseconds(value);
    } else if (flag == "--kill-max-ms") {
      config.kill_max = std::chrono::milliseconds(value);
    } else if (flag == "--max-attempts" && value > 0) {
      config.max_attempts = static_cast<unsigned>(value);
    } else if (flag == "--seed") {
      config.seed = value;
    } else {
      return usage();
    }
  }
  if ((config.tasks == 0) == (config.duration.count() == 0)) return usage();
  if (config.kill_min > config.kill_max) return usage();
  if (config.duration.count() != 0) {
    baseline = false;  // a run for a time has no same-sized run to compare with
    config.deadline = config.duration + std::chrono::minutes(5);
  }
  try {
    bool ok = false;
    if (baseline) {
      const procpool::chaos::ChaosComparison comparison =
          procpool::chaos::run_chaos_and_baseline(config);
      std::fputs(comparison.text().c_str(), stdout);
      ok = comparison.clean() && comparison.ratio() <= kMaxRatio;
      std::printf("result %s\n", !comparison.clean()              ? "ANOMALIES"
                                 : comparison.ratio() > kMaxRatio ? "SLOW (ratio above 1.3)"
                                                                  : "clean");
    } else {
      const procpool::chaos::ChaosReport report = procpool::chaos::run_chaos(config);
      std::fputs(report.text().c_str(), stdout);
      ok = report.clean();
      std::printf("result %s\n", ok ? "clean" : "ANOMALIES");
    }
    return ok ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "procpool-soak: %s\n", e.what());
    return 1;
  }
}
