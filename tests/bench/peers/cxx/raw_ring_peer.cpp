// Peer `raw-ring`: the "shm-spin" physical-limit baseline of docs/workloads.md, one round of L1
// (p50/p99), T1 (one worker, window 1024) and B1 (1 MiB copied with one memcpy into one of 4
// shared 1-MiB slots, summed in place by the worker). The one-way 16-byte stream is left to
// `scripts/bench.sh transport`: 20 million messages take 30 s when the two spinning processes
// end up sharing one busy core.
//
// It is the very ring of tests/bench/raw_ring_spsc.hpp, which `scripts/bench.sh transport` reports
// as raw-ring: its Producer, Consumer and fork helpers.
//
// Usage: procpool-peer-raw-ring [--workload L1,T1,B1] [--quick]

#include "../../raw_ring.hpp"       // raw_ring_pingpong (L1)
#include "../../raw_ring_spsc.hpp"  // the ring itself (T1, B1)

#include <sys/mman.h>

#include <array>
#include <cinttypes>

#include "peer_common.hpp"

namespace procpool::bench {
namespace {

using namespace raw_ring_spsc;

constexpr char kImpl[] = "raw-ring";

// T1: 200,000 increments, one spinning worker, at most 1,024 outstanding.
double t1_window1024() {
  SharedRegion* region = map_shared_region();
  const pid_t child = spawn_server(region, [](const Slot& req) { return Slot{req.a + 1, 0}; });
  const Peer peer{child, true, "child"};
  Producer requests(&region->request);
  Consumer responses(&region->response);
  if (responses.pop(peer).a != kReady) parent_fail(child, "T1: no ready message");
  for (std::uint64_t i = 0; i < 2'000; ++i) {  // warm-up
    requests.push(Slot{i, 0}, peer);
    if (responses.pop(peer).a != i + 1) parent_fail(child, "T1 warm-up: wrong result");
  }

  const std::uint64_t n = peers::kT1Tasks;
  std::uint64_t submitted = 0, received = 0;
  const std::uint64_t t0 = now_ns();
  while (received < n) {
    if (submitted < n && submitted - received < peers::kT1Window) {
      requests.push(Slot{submitted, 0}, peer);
      ++submitted;
      continue;
    }
    const Slot r = responses.pop(peer);
    // One worker, FIFO rings: results come back in input order.
    if (r.a != received + 1) {
      parent_fail(child, "T1: result %llu for input %llu", static_cast<unsigned long long>(r.a),
                  static_cast<unsigned long long>(received));
    }
    ++received;
  }
  const std::uint64_t t1 = now_ns();
  requests.push(Slot{kStop, 0}, peer);
  reap_child(child);
  unmap_shared_region(region);
  return static_cast<double>(n) * 1e9 / static_cast<double>(t1 - t0);
}

constexpr std::size_t kMiB = 1 << 20;

std::uint64_t checksum(const unsigned char* data) {
  std::uint64_t sum = 0;
  for (std::size_t i = 0; i < kMiB; i += 8) {
    std::uint64_t word;
    std::memcpy(&word, data + i, 8);
    sum += word;
  }
  return sum;
}

// B1: 2,000 checksums of 1 MiB, at most 4 in flight; task k copies source buffer k mod 8 into
// shared slot k mod 4 (free again: at most 4 outstanding, FIFO) and the worker sums the slot.
double b1_us_per_task() {
  // The 4 slots: shared anonymous memory, inherited by the forked worker.
  void* mem = mmap(nullptr, 4 * kMiB, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) die_errno("mmap(B1 slots)");
  auto* slots = static_cast<unsigned char*>(mem);

  std::vector<std::vector<unsigned char>> sources(8, std::vector<unsigned char>(kMiB));
  std::array<std::uint64_t, 8> expected{};
  for (std::size_t b = 0; b < 8; ++b) {
    for (std::size_t j = 0; j < kMiB; ++j)
      sources[b][j] = static_cast<unsigned char>((7 * j + b) % 256);
    expected[b] = checksum(sources[b].data());
  }

  SharedRegion* region = map_shared_region();
  const pid_t child = spawn_server(region, [slots](const Slot& req) {
    return Slot{req.a, checksum(slots + (req.b % 4) * kMiB)};
  });
  const Peer peer{child, true, "child"};
  Producer requests(&region->request);
  Consumer responses(&region->response);
  if (responses.pop(peer).a != kReady) parent_fail(child, "B1: no ready message");

  auto submit = [&](std::uint64_t k, std::size_t source) {
    std::memcpy(slots + (k % 4) * kMiB, sources[source].data(), kMiB);
    requests.push(Slot{k, k % 4}, peer);
  };
  for (std::uint64_t b = 0; b < 8; ++b) {  // untimed warm-up: one task per source buffer
    submit(b, b);
    const Slot r = responses.pop(peer);
    if (r.a != b || r.b != expected[b]) parent_fail(child, "B1 warm-up: wrong checksum");
  }

  constexpr std::uint64_t kTasks = 2'000;
  std::uint64_t submitted = 0, received = 0;
  const std::uint64_t t0 = now_ns();
  while (received < kTasks) {
    if (submitted < kTasks && submitted - received < 4) {
      submit(submitted, submitted % 8);
      ++submitted;
      continue;
    }
    const Slot r = responses.pop(peer);
    if (r.a != received || r.b != expected[received % 8]) {
      parent_fail(child, "B1: task %llu: checksum %llu, want %llu",
                  static_cast<unsigned long long>(received), static_cast<unsigned long long>(r.b),
                  static_cast<unsigned long long>(expected[received % 8]));
    }
    ++received;
  }
  const std::uint64_t t1 = now_ns();
  requests.push(Slot{kStop, 0}, peer);
  reap_child(child);
  unmap_shared_region(region);
  if (munmap(mem, 4 * kMiB) != 0) die_errno("munmap(B1 slots)");
  return static_cast<double>(t1 - t0) / 1e3 / kTasks;
}

}  // namespace
}  // namespace procpool::bench

int main(int argc, char** argv) {
  using namespace procpool::bench;
  using peers::print_line;
  using peers::wants;
  peers::arm_watchdog(300);
  if (wants(argc, argv, "L1")) {
    const PingPongResult l1 = raw_ring_pingpong(peers::kL1Warmup, peers::kL1Measured);
    print_line("L1", kImpl, "p50", l1.p50_us, "us");
    print_line("L1", kImpl, "p99", l1.p99_us, "us");
  }
  if (wants(argc, argv, "T1")) {
    print_line("T1", kImpl, "tput_1w_window1024", t1_window1024(), "tasks/s");
  }
  if (wants(argc, argv, "B1")) {
    const double us = b1_us_per_task();
    print_line("B1", kImpl, "us_per_task_copy", us, "us");
    print_line("B1", kImpl, "MiB_per_s_copy", 1e6 / us, "MiB/s");
  }
  return 0;
}
