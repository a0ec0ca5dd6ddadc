// scripts/bench.sh transport: procpool's transport against the raw spin ring, interleaved round by
// round in one run (docs/workloads.md: L1 ping-pong p50/p99, one-way 16-byte messages).

#include <cstdio>     // std::printf
#include <cstdlib>    // std::atoi
#include <exception>  // std::exception
#include <vector>     // per-round figures

#include "bench_stats.hpp"
#include "procpool_transport.hpp"
#include "raw_ring.hpp"

namespace {

using namespace procpool::bench;

struct Figures {
  std::vector<double> p50, p99, oneway;
};

void report(const char* impl, const Figures& f) {
  const auto n = f.p50.size();
  print_figure("L1", impl, "p50", spread(f.p50), "us", n);
  print_figure("L1", impl, "p99", spread(f.p99), "us", n);
  print_figure("T1", impl, "oneway_16B_msgs", spread(f.oneway), "msgs/s", n);
}

}  // namespace

int main(int argc, char** argv) {
  constexpr std::size_t kWarmup = 1'000;
  constexpr std::size_t kMeasured = 20'000;
  constexpr std::uint64_t kMessages = 20'000'000;
  const int rounds = argc > 1 ? std::atoi(argv[1]) : 3;
  try {
    Figures raw, ours;
    for (int round = 1; round <= rounds; ++round) {
      const PingPongResult raw_l1 = raw_ring_pingpong(kWarmup, kMeasured);
      const PingPongResult our_l1 = procpool_pingpong(kWarmup, kMeasured);
      const double raw_oneway = raw_ring_oneway_msgs_per_s(kMessages);
      const double our_oneway = procpool_oneway_msgs_per_s(kMessages);
      raw.p50.push_back(raw_l1.p50_us);
      raw.p99.push_back(raw_l1.p99_us);
      raw.oneway.push_back(raw_oneway);
      ours.p50.push_back(our_l1.p50_us);
      ours.p99.push_back(our_l1.p99_us);
      ours.oneway.push_back(our_oneway);
      std::fprintf(stderr, "round %d/%d done\n", round, rounds);
    }
    report("procpool", ours);
    report("raw-ring", raw);
    const double latency_ratio = median(ours.p50) / median(raw.p50);
    const double throughput_ratio = median(ours.oneway) / median(raw.oneway);
    std::printf("# procpool/raw-ring: L1 p50 %.2fx (target <= 2), oneway %.2fx (target >= 0.5)\n",
                latency_ratio, throughput_ratio);
    return latency_ratio <= 2.0 && throughput_ratio >= 0.5 ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "procpool-bench-transport: %s\n", e.what());
    return 2;
  }
}
