// Peers `asio-pool` and `asio-pool-callback`: boost::asio::thread_pool in the supervisor's own
// process (issue 12). No second process and so no isolation: a crashing task takes the caller
// down with it, which is what procpool's worker processes exist to prevent. It shows what the
// process boundary costs against the cheapest pool a C++ program would otherwise reach for.
// One round of docs/workloads.md L1 (p50/p99) and T1 (two threads, window 1024):
//   - asio-pool: one std::future per task (a std::packaged_task posted with boost::asio::post);
//     the caller waits on the future. L1 and T1.
//   - asio-pool-callback: one callback per task, run on the pool thread that ran the task; the
//     caller counts completions in an atomic and never has more than 1,024 outstanding. T1.
// L1 runs on a pool of one thread, since the workload has one worker (docs/workloads.md).
//
// Usage: procpool-peer-asio-pool [--workload L1,T1] [--quick]
//        (--quick changes nothing: L1 and T1 have fixed sizes.)

#include <atomic>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <exception>
#include <future>
#include <string>
#include <utility>
#include <vector>

#include "peer_common.hpp"

namespace {

using namespace procpool::bench;
using namespace procpool::bench::peers;

constexpr char kImpl[] = "asio-pool";
constexpr char kImplCallback[] = "asio-pool-callback";
constexpr std::size_t kT1Threads = 2;

// The task of L1 and T1. noinline so that it stays a call made on the pool thread.
[[gnu::noinline]] std::uint64_t increment(std::uint64_t x) { return x + 1; }

std::future<std::uint64_t> submit(boost::asio::thread_pool& pool, std::uint64_t x) {
  std::packaged_task<std::uint64_t()> task([x] { return increment(x); });
  std::future<std::uint64_t> result = task.get_future();
  boost::asio::post(pool, std::move(task));
  return result;
}

void l1() {
  boost::asio::thread_pool pool(1);
  std::vector<double> samples;
  samples.reserve(kL1Measured);
  for (std::size_t i = 0; i < kL1Warmup + kL1Measured; ++i) {
    const std::uint64_t x = i < kL1Warmup ? i : kL1Base + (i - kL1Warmup);
    const std::uint64_t t0 = now_ns();
    const std::uint64_t r = submit(pool, x).get();
    const std::uint64_t t1 = now_ns();
    if (r != x + 1) wrong("L1 sent %" PRIu64 ", got %" PRIu64, x, r);
    if (i >= kL1Warmup) samples.push_back(static_cast<double>(t1 - t0) / 1e3);
  }
  pool.join();
  print_line("L1", kImpl, "p50", percentile_nearest_rank(samples, 0.50), "us");
  print_line("L1", kImpl, "p99", percentile_nearest_rank(samples, 0.99), "us");
}

// Warm-up, as the other peers' T1: 2,000 untimed tasks, so that both threads have run.
void t1_warm_up(boost::asio::thread_pool& pool) {
  std::vector<std::future<std::uint64_t>> futures;
  futures.reserve(2'000);
  for (std::uint64_t i = 0; i < 2'000; ++i) futures.push_back(submit(pool, i));
  for (std::uint64_t i = 0; i < 2'000; ++i) {
    if (futures[i].get() != i + 1) wrong("T1 warm-up");
  }
}

double tasks_per_s(std::uint64_t start, std::uint64_t end) {
  return static_cast<double>(kT1Tasks) * 1e9 / static_cast<double>(end - start);
}

const std::string kT1Figure = "tput_" + std::to_string(kT1Threads) + "w_window1024";

void t1_futures() {
  boost::asio::thread_pool pool(kT1Threads);
  t1_warm_up(pool);
  std::deque<std::pair<std::uint64_t, std::future<std::uint64_t>>> window;
  const std::uint64_t start = now_ns();
  for (std::uint64_t i = 0; i < kT1Tasks; ++i) {
    if (window.size() == kT1Window) {
      auto [x, future] = std::move(window.front());
      window.pop_front();
      const std::uint64_t r = future.get();
      if (r != x + 1) wrong("T1 futures: %" PRIu64 " -> %" PRIu64, x, r);
    }
    window.emplace_back(i, submit(pool, i));
  }
  for (auto& [x, future] : window) {
    const std::uint64_t r = future.get();
    if (r != x + 1) wrong("T1 futures: %" PRIu64 " -> %" PRIu64, x, r);
  }
  const std::uint64_t end = now_ns();
  pool.join();
  print_line("T1", kImpl, kT1Figure, tasks_per_s(start, end), "tasks/s");
}

// The caller spins (with PAUSE) while the window is full and at the end, like procpool's own
// callback benchmark (tests/bench/pool_bench.cpp, batch_window1024): the only spinning thread
// in the process (docs/workloads.md).
void t1_callbacks() {
  boost::asio::thread_pool pool(kT1Threads);
  t1_warm_up(pool);
  std::vector<std::uint64_t> results(kT1Tasks, 0);  // slot x written once, by x's callback
  std::atomic<std::size_t> done{0};
  auto on_result = [&](std::uint64_t x, std::uint64_t r) {
    results[x] = r;
    done.fetch_add(1, std::memory_order_release);
  };
  const std::uint64_t start = now_ns();
  for (std::uint64_t i = 0; i < kT1Tasks; ++i) {
    while (i - done.load(std::memory_order_acquire) >= kT1Window) cpu_relax();
    boost::asio::post(pool, [i, &on_result] { on_result(i, increment(i)); });
  }
  while (done.load(std::memory_order_acquire) < kT1Tasks) cpu_relax();
  const std::uint64_t end = now_ns();
  pool.join();
  for (std::uint64_t x = 0; x < kT1Tasks; ++x) {
    if (results[x] != x + 1) wrong("T1 callbacks: %" PRIu64 " -> %" PRIu64, x, results[x]);
  }
  print_line("T1", kImplCallback, kT1Figure, tasks_per_s(start, end), "tasks/s");
}

}  // namespace

int main(int argc, char** argv) {
  arm_watchdog(300);  // a lost wake-up would otherwise block in future::get() for ever
  try {
    if (wants(argc, argv, "L1")) l1();
    if (wants(argc, argv, "T1")) {
      t1_futures();
      t1_callbacks();
    }
  } catch (const std::exception& e) {
    errno = 0;
    fail("asio-pool: %s", e.what());
  }
  return 0;
}
