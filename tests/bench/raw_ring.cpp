// "shm-spin" baseline, written the simple way: one release store of head per message, one
// release store of tail per message, both sides busy-spinning with PAUSE.
#include "raw_ring.hpp"

#include <cstdint>  // std::uint64_t
#include <vector>   // samples

#include "bench_stats.hpp"

#include "raw_ring_spsc.hpp"

namespace procpool::bench {

using namespace raw_ring_spsc;

PingPongResult raw_ring_pingpong(std::size_t warmup, std::size_t measured) {
  if (measured == 0) parent_fail(-1, "raw_ring_pingpong: measured must be > 0");
  SharedRegion* region = map_shared_region();

  const pid_t child = spawn_server(region, [](const Slot& req) { return Slot{req.a + 1, 0}; });

  const Peer peer{child, true, "child"};
  Producer requests(&region->request);
  Consumer responses(&region->response);
  if (const Slot ready = responses.pop(peer); ready.a != kReady) {
    parent_fail(child, "expected the child's ready message, got %llu",
                static_cast<unsigned long long>(ready.a));
  }

  for (std::size_t i = 0; i < warmup; ++i) {
    const std::uint64_t x = i;
    requests.push(Slot{x, 0}, peer);
    const Slot r = responses.pop(peer);
    if (r.a != x + 1) {
      parent_fail(child, "warm-up round trip %llu: sent %llu, got %llu (want x+1)",
                  static_cast<unsigned long long>(i), static_cast<unsigned long long>(x),
                  static_cast<unsigned long long>(r.a));
    }
  }

  std::vector<double> samples;
  samples.reserve(measured);  // the only allocation; done before the timed loop
  for (std::size_t i = 0; i < measured; ++i) {
    const std::uint64_t x = 1'000'000 + i;
    const std::uint64_t t0 = now_ns();
    requests.push(Slot{x, 0}, peer);
    const Slot r = responses.pop(peer);
    const std::uint64_t t1 = now_ns();
    if (r.a != x + 1) {
      parent_fail(child, "round trip %llu: sent %llu, got %llu (want x+1)",
                  static_cast<unsigned long long>(i), static_cast<unsigned long long>(x),
                  static_cast<unsigned long long>(r.a));
    }
    samples.push_back(static_cast<double>(t1 - t0) / 1000.0);
  }

  requests.push(Slot{kStop, 0}, peer);
  reap_child(child);
  unmap_shared_region(region);
  return PingPongResult{percentile_nearest_rank(samples, 0.50),
                        percentile_nearest_rank(samples, 0.99)};
}

double raw_ring_oneway_msgs_per_s(std::uint64_t messages) {
  if (messages == 0) parent_fail(-1, "raw_ring_oneway_msgs_per_s: messages must be > 0");
  SharedRegion* region = map_shared_region();

  const pid_t child = spawn_child([region, messages](const Peer& parent) {
    Consumer stream(&region->request);
    Producer report(&region->response);
    report.push(Slot{kReady, 0}, parent);
    std::uint64_t checksum = 0;
    for (std::uint64_t i = 0; i < messages; ++i) {
      const Slot s = stream.pop(parent);
      if (s.a != i || s.b != i * 3) {
        // Tell the parent right away rather than letting it time out.
        report.push(Slot{1, i}, parent);
        child_fail("one-way stream out of sequence or corrupted");
      }
      checksum += s.a + s.b;
    }
    report.push(Slot{0, checksum}, parent);
  });

  const Peer peer{child, true, "child"};
  Producer stream(&region->request);
  Consumer report(&region->response);
  // Wait for the child to be up and polling, so fork cost is not part of the measurement.
  if (const Slot ready = report.pop(peer); ready.a != kReady) {
    parent_fail(child, "expected the child's ready message, got %llu",
                static_cast<unsigned long long>(ready.a));
  }

  const std::uint64_t t0 = now_ns();
  for (std::uint64_t i = 0; i < messages; ++i) stream.push(Slot{i, i * 3}, peer);
  const Slot done = report.pop(peer);
  const std::uint64_t t1 = now_ns();

  if (done.a != 0) {
    parent_fail(child, "child reported a bad message at sequence number %llu",
                static_cast<unsigned long long>(done.b));
  }
  // sum of (i + 3i) for i < n is 4 * n(n-1)/2 = 2n(n-1), modulo 2^64 like the child's sum.
  const std::uint64_t expected = 2 * messages * (messages - 1);
  if (done.b != expected) {
    parent_fail(child, "checksum mismatch: child %llu, expected %llu",
                static_cast<unsigned long long>(done.b), static_cast<unsigned long long>(expected));
  }
  reap_child(child);
  unmap_shared_region(region);
  return static_cast<double>(messages) * 1e9 / static_cast<double>(t1 - t0);
}

}  // namespace procpool::bench
