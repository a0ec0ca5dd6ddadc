// scripts/bench.sh pool: procpool's pool through its public API, docs/workloads.md L1, T1, B1,
// B2, C1, S1, R1 and I1 (M1 is timed by bench.sh around the procpool binary). Each figure is
// measured `rounds` times, rounds interleaving the workloads, and reported as the median with its
// spread.
//
// Usage: procpool-bench-pool WORKER_DIR [rounds] [--quick]

#include <signal.h>        // SIGKILL
#include <sys/resource.h>  // getrusage

#include <algorithm>  // std::sort, std::min, std::max
#include <atomic>     // completion counters
#include <charconv>   // std::to_chars
#include <cstdio>     // std::printf
#include <cstring>    // std::memcpy
#include <deque>      // windows of futures
#include <exception>  // std::exception
#include <map>        // figures by name
#include <string>     // payloads
#include <thread>     // std::this_thread::sleep_for (I1's idle period)
#include <vector>     // samples

#include "bench_stats.hpp"
#include "checksum_function.hpp"  // the checksum worker's own function (worker/examples)
#include "fib_function.hpp"       // the fib worker's own function (worker/examples)
#include "procpool/pool.hpp"

namespace {

using namespace procpool;
using namespace procpool::bench;
using Figures = std::map<std::string, std::vector<double>>;  // "L1 p50 us" -> per-round values

std::string worker_dir;

PoolOptions pool_of(const std::string& worker, unsigned workers) {
  PoolOptions options;
  options.executable = worker_dir + "/procpool-worker-" + worker;
  options.min_workers = workers;
  options.max_workers = workers;
  if (const char* depth = std::getenv("PROCPOOL_BENCH_DEPTH"))
    options.pipeline_depth = static_cast<unsigned>(std::atoi(depth));
  if (const char* ring = std::getenv("PROCPOOL_BENCH_RING"))
    options.ring_capacity = std::strtoull(ring, nullptr, 10);
  return options;
}

[[noreturn]] void wrong(const std::string& what) {
  std::fprintf(stderr, "procpool-bench-pool: wrong result: %s\n", what.c_str());
  std::exit(3);
}

void record(Figures& f, const std::string& key, double value) { f[key].push_back(value); }

// L1: one task at a time through submit(...).get().
void l1(Figures& f) {
  Pool pool(pool_of("increment", 1));
  std::vector<double> samples;
  samples.reserve(20'000);
  for (int i = 0; i < 21'000; ++i) {
    const std::uint64_t x = 1'000'000 + static_cast<std::uint64_t>(i);
    const std::string input = std::to_string(x);
    const std::uint64_t start = now_ns();
    const std::string result = pool.submit("increment", input).get();
    const std::uint64_t end = now_ns();
    if (result != std::to_string(x + 1)) wrong("L1 " + input + " -> " + result);
    if (i >= 1'000) samples.push_back(static_cast<double>(end - start) / 1e3);
  }
  record(f, "L1 p50 us", percentile_nearest_rank(samples, 0.50));
  record(f, "L1 p99 us", percentile_nearest_rank(samples, 0.99));
}

// T1: 200,000 increments on two workers. PROCPOOL_BENCH_ONLY=T1:chunk (say) runs only the
// variants whose figure name contains "chunk".
void t1(Figures& f) {
  const char* only = std::getenv("PROCPOOL_BENCH_ONLY");
  const std::string_view variant =
      only != nullptr && std::string_view(only).size() > 3 ? std::string_view(only).substr(3) : "";
  auto run = [&](std::string_view name) { return name.find(variant) != std::string_view::npos; };
  constexpr std::size_t kTasks = 200'000;
  std::vector<std::string> inputs(kTasks);
  std::vector<std::string_view> views(kTasks);
  for (std::size_t i = 0; i < kTasks; ++i) {
    inputs[i] = std::to_string(i);
    views[i] = inputs[i];
  }
  Pool pool(pool_of("increment", 2));
  for (int i = 0; i < 2'000; ++i) pool.submit("increment", inputs[i % 100]).get();  // warm up

  if (run("futures_window1024")) {  // futures, window 1024: the default one-message-per-task way
    std::deque<std::pair<std::size_t, procpool::Future<std::string>>> window;
    const std::uint64_t start = now_ns();
    for (std::size_t i = 0; i < kTasks; ++i) {
      if (window.size() == 1024) {
        auto [index, future] = std::move(window.front());
        window.pop_front();
        if (future.get() != std::to_string(index + 1)) wrong("T1 futures");
      }
      window.emplace_back(i, pool.submit("increment", views[i]));
    }
    for (auto& [index, future] : window) {
      if (future.get() != std::to_string(index + 1)) wrong("T1 futures");
    }
    const std::uint64_t end = now_ns();
    record(f, "T1 tput_2w_futures_window1024 tasks/s",
           kTasks * 1e9 / static_cast<double>(end - start));
  }

  auto check = [&](std::size_t index, const TaskOutcome& outcome) {
    char expected[24];
    const auto n = std::to_chars(expected, expected + sizeof expected, index + 1).ptr - expected;
    if (!outcome.ok() ||
        outcome.value() != std::string_view(expected, static_cast<std::size_t>(n))) {
      wrong("T1 callback index " + std::to_string(index));
    }
  };
  if (run("batch_window1024")) {  // fast path, window 1024: callbacks, submitted in batches of 256
                                  // while < 1024 outstanding
    std::atomic<std::size_t> done{0};
    const std::uint64_t start = now_ns();
    std::size_t submitted = 0;
    while (submitted < kTasks) {
      while (submitted - done.load(std::memory_order_acquire) > 1024 - 256) cpu_relax();
      const std::size_t n = std::min<std::size_t>(256, kTasks - submitted);
      const std::size_t base = submitted;
      pool.submit_batch("increment", std::span(views).subspan(base, n), {},
                        [&, base](std::size_t i, const TaskOutcome& outcome) {
                          check(base + i, outcome);
                          done.fetch_add(1, std::memory_order_release);
                        });
      submitted += n;
    }
    while (done.load(std::memory_order_acquire) < kTasks) cpu_relax();
    const std::uint64_t end = now_ns();
    record(f, "T1 tput_2w_batch_window1024 tasks/s",
           kTasks * 1e9 / static_cast<double>(end - start));
  }
  // Chunked (Pool::submit_chunked, Python's chunksize): many items per message.
  for (const std::size_t chunk : {std::size_t{10'000}, std::size_t{1'000}}) {
    if (!run("chunk" + std::to_string(chunk))) continue;
    std::atomic<std::size_t> done{0};
    const std::uint64_t start = now_ns();
    pool.submit_chunked("increment", std::span(views), chunk, {},
                        [&](std::size_t i, const TaskOutcome& outcome) {
                          check(i, outcome);
                          done.fetch_add(1, std::memory_order_relaxed);
                        });
    pool.wait_idle();
    const std::uint64_t end = now_ns();
    if (done.load() != kTasks) wrong("T1 chunked count");
    record(f, "T1 tput_2w_chunk" + std::to_string(chunk) + " tasks/s",
           kTasks * 1e9 / static_cast<double>(end - start));
  }
  if (run("batch_submitall")) {  // fast path, submit all then wait
    std::atomic<std::size_t> done{0};
    const std::uint64_t start = now_ns();
    pool.submit_batch("increment", std::span(views), {},
                      [&](std::size_t i, const TaskOutcome& outcome) {
                        check(i, outcome);
                        done.fetch_add(1, std::memory_order_relaxed);
                      });
    pool.wait_idle();
    const std::uint64_t end = now_ns();
    if (done.load() != kTasks) wrong("T1 submitall count");
    record(f, "T1 tput_2w_batch_submitall tasks/s",
           kTasks * 1e9 / static_cast<double>(end - start));
  }
}

// B1: 1 MiB checksums, at most 4 in flight, one worker. Runs the 2,000 timed tasks through
// `pool`, task k as `handler` on payloads[k % payloads.size()], each answer checked against
// expected[k % payloads.size()]; returns the seconds taken.
double b1_window(Pool& pool, const char* handler, const std::vector<std::string>& payloads,
                 const std::vector<std::string>& expected, int tasks) {
  const std::size_t n = payloads.size();
  for (std::size_t b = 0; b < n; ++b) {  // untimed warm-up: one task per source buffer
    if (pool.submit(handler, payloads[b]).get() != expected[b]) wrong("B1 warm-up");
  }
  std::deque<std::pair<int, procpool::Future<std::string>>> window;
  const std::uint64_t start = now_ns();
  for (int k = 0; k < tasks; ++k) {
    if (window.size() == 4) {
      auto [index, future] = std::move(window.front());
      window.pop_front();
      if (future.get() != expected[static_cast<std::size_t>(index) % n]) wrong(handler);
    }
    window.emplace_back(k, pool.submit(handler, payloads[static_cast<std::size_t>(k) % n]));
  }
  for (auto& [index, future] : window) {
    if (future.get() != expected[static_cast<std::size_t>(index) % n]) wrong(handler);
  }
  return static_cast<double>(now_ns() - start) / 1e9;
}

void b1(Figures& f) {
  constexpr std::size_t kSize = 1 << 20;
  constexpr int kTasks = 2'000;
  std::vector<std::string> buffers(8, std::string(kSize, '\0'));
  std::vector<std::string> expected(8);
  for (std::size_t b = 0; b < 8; ++b) {
    for (std::size_t j = 0; j < kSize; ++j) buffers[b][j] = static_cast<char>((7 * j + b) % 256);
    std::uint64_t sum = 0;
    for (std::size_t i = 0; i < kSize; i += 8) {
      std::uint64_t word;
      std::memcpy(&word, buffers[b].data() + i, 8);
      sum += word;
    }
    expected[b] = std::to_string(sum);
  }
  PoolOptions options = pool_of("checksum", 1);
  {  // copied: the pool's default delivery, 8 source buffers
    Pool pool(options);
    const double seconds = b1_window(pool, "checksum", buffers, expected, kTasks);
    record(f, "B1 us_per_task_copy us", seconds * 1e6 / kTasks);
    record(f, "B1 MiB_per_s_copy MiB/s", kTasks / seconds);
  }
  {
    // Shared memory (PoolOptions::shared_memory_size): like the peers that move buffers, 4
    // buffers in rotation; each lives in the pool's shared memory, written there once, and the
    // task names its range ("OFFSET LENGTH"); the worker sums it in place. No copy at all.
    options.shared_memory_size = 4 * kSize;
    Pool pool(options);
    const std::span<std::byte> shared = pool.shared_memory();
    std::vector<std::string> ranges(4);
    for (std::size_t b = 0; b < 4; ++b) {
      std::memcpy(shared.data() + b * kSize, buffers[b].data(), kSize);
      ranges[b] = std::to_string(b * kSize) + " " + std::to_string(kSize);
    }
    const std::vector<std::string> first_four(expected.begin(), expected.begin() + 4);
    const double seconds = b1_window(pool, "checksum_shared", ranges, first_four, kTasks);
    record(f, "B1 us_per_task_shared us", seconds * 1e6 / kTasks);
    record(f, "B1 MiB_per_s_shared MiB/s", kTasks / seconds);
  }
  // Context: the checksum alone, in this process.
  const std::uint64_t t0 = now_ns();
  std::uint64_t sink = 0;
  for (int r = 0; r < 200; ++r) {
    const std::string& buffer = buffers[static_cast<std::size_t>(r % 8)];
    sink += examples::checksum_words(reinterpret_cast<const std::byte*>(buffer.data()),
                                     buffer.size());  // the checksum worker's own function
  }
  if (sink == 42) std::printf("#\n");
  record(f, "B1 checksum_us_per_MiB_inproc us", static_cast<double>(now_ns() - t0) / 1e3 / 200);
}

// B2: the copy path from 1 to 64 MiB, one task in flight on one worker; payloads above the
// ring's record size travel in fragments. Per size, one untimed task, then the median of at
// least 5 round trips (more for the small ones); the lowest bandwidth over the sizes is the
// target's figure.
void b2(Figures& f) {
  Pool pool(pool_of("checksum", 1));
  double lowest = 0;
  for (const std::size_t mib : {1, 2, 3, 4, 5, 8, 16, 32, 64}) {
    const std::string payload(mib << 20, 'a');
    const std::string expected = pool.submit("checksum", payload).get();
    std::vector<double> seconds;
    for (std::size_t k = 0; k < std::max<std::size_t>(5, 64 / mib); ++k) {
      const std::uint64_t start = now_ns();
      if (pool.submit("checksum", payload).get() != expected) wrong("B2 checksum");
      seconds.push_back(static_cast<double>(now_ns() - start) / 1e9);
    }
    std::sort(seconds.begin(), seconds.end());
    const double gib_per_s = static_cast<double>(mib) / 1024 / seconds[seconds.size() / 2];
    record(f, "B2 GiB_per_s_" + std::to_string(mib) + "MiB GiB/s", gib_per_s);
    lowest = lowest == 0 ? gib_per_s : std::min(lowest, gib_per_s);
  }
  record(f, "B2 GiB_per_s_lowest GiB/s", lowest);
}

// C1: 512 fib(30) on two workers against the same 512 in this process, alternated 5 times.
// The size is docs/workloads.md's: long enough that submit and wake-up costs and the machine's
// noise are small against the work.
void c1(Figures& f) {
  constexpr int kTasks = 512;
  constexpr std::uint64_t kFib30 = 832'040;
  Pool pool(pool_of("fib", 2));
  for (int i = 0; i < 4; ++i) pool.submit("fib", "30").get();
  volatile std::uint64_t n30 = 30;  // the worker's fib reads n from its payload: so does this one
  std::vector<double> serial, parallel;
  for (int rep = 0; rep < 5; ++rep) {
    std::uint64_t start = now_ns();
    std::uint64_t sum = 0;
    for (int i = 0; i < kTasks; ++i) sum += examples::fib(n30);
    if (sum != kTasks * kFib30) wrong("C1 serial");
    serial.push_back(static_cast<double>(now_ns() - start) / 1e6);
    start = now_ns();
    std::vector<procpool::Future<std::string>> futures;
    futures.reserve(kTasks);
    for (int i = 0; i < kTasks; ++i) futures.push_back(pool.submit("fib", "30"));
    for (auto& future : futures) {
      if (future.get() != "832040") wrong("C1 parallel");
    }
    parallel.push_back(static_cast<double>(now_ns() - start) / 1e6);
  }
  const double s = median(serial), p = median(parallel);
  record(f, "C1 serial_ms ms", s);
  record(f, "C1 wall_ms ms", p);
  record(f, "C1 efficiency_pct %", 100.0 * s / (2 * p));
}

// S1: from asking for a pool of one worker to that worker's first answer.
void s1(Figures& f) {
  std::vector<double> samples;
  for (int i = 0; i < 52; ++i) {
    const std::uint64_t start = now_ns();
    Pool pool(pool_of("increment", 1));
    if (pool.submit("increment", "41").get() != "42") wrong("S1");
    const std::uint64_t end = now_ns();
    if (i >= 2) samples.push_back(static_cast<double>(end - start) / 1e6);
  }
  record(f, "S1 p50_ms ms", percentile_nearest_rank(samples, 0.50));
}

// R1: SIGKILL the worker; time from the kill to the first result from its replacement.
void r1(Figures& f) {
  PoolOptions options = pool_of("increment", 1);
  options.max_attempts = 3;  // a task that lands on the dying worker is retried
  Pool pool(options);
  pool.submit("increment", "1").get();
  std::vector<double> samples;
  for (int i = 0; i < 20; ++i) {
    const int pid = pool.metrics().workers.at(0).pid;
    const std::uint64_t start = now_ns();
    ::kill(pid, SIGKILL);
    for (;;) {
      TaskOptions retry;
      retry.max_attempts = 3;
      try {
        if (pool.submit("increment", "41", retry).get() != "42") wrong("R1");
      } catch (const TaskError&) {
        continue;  // landed on the dying worker more than twice; try again
      }
      if (pool.metrics().workers.at(0).pid != pid) break;
    }
    samples.push_back(static_cast<double>(now_ns() - start) / 1e6);
  }
  record(f, "R1 p50_ms ms", percentile_nearest_rank(samples, 0.50));
}

double cpu_seconds_self() {
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
         static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

// I1: two warmed-up workers idle for `seconds`: CPU of the supervisor and the workers.
void i1(Figures& f, int seconds) {
  Pool pool(pool_of("increment", 2));
  for (int i = 0; i < 1000; ++i) pool.submit("increment", "1").get();
  auto worker_cpu = [&] {
    double total = 0;
    for (const WorkerMetrics& w : pool.metrics().workers) total += w.cpu_s;
    return total;
  };
  const double self0 = cpu_seconds_self(), workers0 = worker_cpu();
  std::this_thread::sleep_for(std::chrono::seconds(seconds));  // the workload is to idle
  const double used = (cpu_seconds_self() - self0) + (worker_cpu() - workers0);
  record(f, "I1 cpu_pct %", 100.0 * used / seconds);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: procpool-bench-pool WORKER_DIR [rounds] [--quick]\n");
    return 2;
  }
  worker_dir = argv[1];
  int rounds = 3;
  bool quick = false;
  for (int i = 2; i < argc; ++i) {
    if (std::string(argv[i]) == "--quick") {
      quick = true;
    } else {
      rounds = std::atoi(argv[i]);
    }
  }
  try {
    Figures figures;
    for (int round = 1; round <= rounds; ++round) {
      // PROCPOOL_BENCH_ONLY=T1 (say) runs one workload, for profiling.
      const char* only = std::getenv("PROCPOOL_BENCH_ONLY");
      auto want = [&](const char* name) {
        return only == nullptr || std::string_view(only).substr(0, 2) == name;
      };
      if (want("L1")) l1(figures);
      if (want("T1")) t1(figures);
      if (want("B1")) b1(figures);
      if (want("B2")) b2(figures);
      if (want("C1")) c1(figures);
      if (want("S1")) s1(figures);
      if (want("R1")) r1(figures);
      if (want("I1")) i1(figures, quick ? 2 : 10);
      std::fprintf(stderr, "round %d/%d done\n", round, rounds);
    }
    for (const auto& [key, values] : figures) {
      // key = "WORKLOAD FIGURE UNIT"
      const auto first = key.find(' ');
      const auto last = key.rfind(' ');
      print_figure(key.substr(0, first), "procpool", key.substr(first + 1, last - first - 1),
                   spread(values), key.substr(last + 1), values.size());
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "procpool-bench-pool: %s\n", e.what());
    return 2;
  }
}
