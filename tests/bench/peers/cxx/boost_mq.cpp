// Peer `boost-mq`: boost::interprocess::message_queue as the transport between a supervisor
// process and worker processes it spawns (posix_spawn of this same executable with --worker).
// One round of docs/workloads.md L1 (p50/p99), T1 (window 1024, one and two workers) and S1 (spawn
// of the worker to its first reply, the queues already existing).
//
// Two queues: requests (supervisor -> workers) and responses (workers -> supervisor), 1,024
// messages of 8 bytes each: a task is the 64-bit input x, its result x + 1. With two workers both
// take from the same request queue (message_queue is multi-producer/multi-consumer), so results
// come back in any order and are checked against a bitmap of outstanding inputs.
//
// This is the design procpool avoids (docs/design-rules.md §1): the queue's robust
// process-shared mutex is poisoned for good when a worker dies holding it. Fine for a benchmark
// peer that nobody kills.
//
// Usage: procpool-peer-boost-mq [--workload L1,T1,S1] [--quick]
//        procpool-peer-boost-mq --worker REQUEST_QUEUE RESPONSE_QUEUE PARENT_PID  (internal)

#include <spawn.h>
#include <sys/random.h>
#include <unistd.h>

#include <boost/interprocess/ipc/message_queue.hpp>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#include "peer_common.hpp"

extern char** environ;

namespace {

namespace bip = boost::interprocess;
using namespace procpool::bench;
using namespace procpool::bench::peers;

constexpr char kImpl[] = "boost-mq";
constexpr std::uint64_t kStop = UINT64_MAX;
constexpr std::size_t kQueueMessages = 1'024;  // >= the T1 window, so no send ever blocks

// Queue names: unique and unguessable, owner-only (0600), removed at exit (also by the watchdog
// and fail()). The paths under /dev/shm are kept for the async-signal-safe cleanup.
char g_names[2][96];
char g_paths[2][208];  // "/dev/shm/" + a name (sized for g++'s -Wformat-truncation)

void remove_queues() {
  for (const char* path : g_paths) {
    if (path[0] != '\0') unlink(path);  // async-signal-safe equivalent of message_queue::remove
  }
}

std::uint64_t recv_u64(bip::message_queue& mq) {
  std::uint64_t value = 0;
  bip::message_queue::size_type received = 0;
  unsigned priority = 0;
  mq.receive(&value, sizeof value, received, priority);
  if (received != sizeof value) wrong("boost-mq: message of %zu bytes", received);
  return value;
}

void send_u64(bip::message_queue& mq, std::uint64_t value) { mq.send(&value, sizeof value, 0); }

int worker_main(const char* request_name, const char* response_name, pid_t parent) {
  die_with_parent(parent);
  bip::message_queue requests(bip::open_only, request_name);
  bip::message_queue responses(bip::open_only, response_name);
  for (;;) {
    const std::uint64_t x = recv_u64(requests);
    if (x == kStop) return 0;
    send_u64(responses, x + 1);
  }
}

class Channel {
 public:
  Channel() {
    std::uint64_t rnd = 0;
    if (getrandom(&rnd, sizeof rnd, 0) != static_cast<ssize_t>(sizeof rnd)) fail("getrandom");
    for (int q = 0; q < 2; ++q) {
      std::snprintf(g_names[q], sizeof g_names[q], "procpool-bench-mq-%u-%d-%016" PRIx64 "-%s",
                    static_cast<unsigned>(getuid()), static_cast<int>(getpid()), rnd,
                    q == 0 ? "req" : "resp");
      std::snprintf(g_paths[q], sizeof g_paths[q], "/dev/shm/%s", g_names[q]);
    }
    cleanup_hook() = remove_queues;
    bip::permissions owner_only(0600);
    requests_ = std::make_unique<bip::message_queue>(bip::create_only, g_names[0], kQueueMessages,
                                                     sizeof(std::uint64_t), owner_only);
    responses_ = std::make_unique<bip::message_queue>(bip::create_only, g_names[1], kQueueMessages,
                                                      sizeof(std::uint64_t), owner_only);
  }
  ~Channel() {
    requests_.reset();
    responses_.reset();
    bip::message_queue::remove(g_names[0]);
    bip::message_queue::remove(g_names[1]);
    g_paths[0][0] = g_paths[1][0] = '\0';
  }
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;

  bip::message_queue& requests() { return *requests_; }
  bip::message_queue& responses() { return *responses_; }

  // posix_spawn of this executable as a worker on these queues.
  pid_t spawn_worker() {
    static std::string self = [] {
      char buf[4096];
      const ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
      if (n <= 0) fail("readlink(/proc/self/exe)");
      return std::string(buf, static_cast<std::size_t>(n));
    }();
    const std::string parent = std::to_string(getpid());
    char* argv[] = {self.data(), const_cast<char*>("--worker"),     g_names[0],
                    g_names[1],  const_cast<char*>(parent.c_str()), nullptr};
    pid_t pid = -1;
    const int rc = posix_spawn(&pid, self.c_str(), nullptr, nullptr, argv, environ);
    if (rc != 0) {
      errno = rc;
      fail("posix_spawn(%s)", self.c_str());
    }
    children().push_back(pid);
    return pid;
  }

  void stop_worker(pid_t pid) {
    send_u64(requests(), kStop);
    reap_ok(pid, "boost-mq worker");
  }

 private:
  std::unique_ptr<bip::message_queue> requests_;
  std::unique_ptr<bip::message_queue> responses_;
};

void l1(Channel& channel) {
  const pid_t worker = channel.spawn_worker();
  auto& rq = channel.requests();
  auto& rs = channel.responses();
  std::vector<double> samples;
  samples.reserve(kL1Measured);
  for (std::size_t i = 0; i < kL1Warmup + kL1Measured; ++i) {
    const std::uint64_t x = i < kL1Warmup ? i : kL1Base + (i - kL1Warmup);
    const std::uint64_t t0 = now_ns();
    send_u64(rq, x);
    const std::uint64_t r = recv_u64(rs);
    const std::uint64_t t1 = now_ns();
    if (r != x + 1) wrong("L1 sent %" PRIu64 ", got %" PRIu64, x, r);
    if (i >= kL1Warmup) samples.push_back(static_cast<double>(t1 - t0) / 1e3);
  }
  channel.stop_worker(worker);
  print_line("L1", kImpl, "p50", percentile_nearest_rank(samples, 0.50), "us");
  print_line("L1", kImpl, "p99", percentile_nearest_rank(samples, 0.99), "us");
}

void t1(Channel& channel, int workers) {
  std::vector<pid_t> pids;
  for (int w = 0; w < workers; ++w) pids.push_back(channel.spawn_worker());
  auto& rq = channel.requests();
  auto& rs = channel.responses();
  // Warm-up: every worker up and answering (2,000 untimed round trips, window of 64).
  for (std::uint64_t i = 0; i < 2'000; i += 64) {
    for (std::uint64_t j = 0; j < 64; ++j) send_u64(rq, i + j);
    std::uint64_t sum = 0;
    for (std::uint64_t j = 0; j < 64; ++j) sum += recv_u64(rs);
    if (sum != 64 * i + 64 * 65 / 2) wrong("T1 warm-up");
  }

  std::vector<std::uint8_t> seen(kT1Tasks, 0);
  std::size_t submitted = 0, received = 0;
  const std::uint64_t start = now_ns();
  while (received < kT1Tasks) {
    if (submitted < kT1Tasks && submitted - received < kT1Window) {
      send_u64(rq, submitted++);
      continue;
    }
    const std::uint64_t r = recv_u64(rs);
    if (r == 0 || r > kT1Tasks || seen[r - 1] != 0) wrong("T1 result %" PRIu64, r);
    seen[r - 1] = 1;
    ++received;
  }
  const std::uint64_t end = now_ns();
  for (std::size_t w = 0; w < pids.size(); ++w) send_u64(rq, kStop);
  for (pid_t pid : pids) reap_ok(pid, "boost-mq worker");
  const std::string figure = "tput_" + std::to_string(workers) + "w_window1024";
  print_line("T1", kImpl, figure,
             static_cast<double>(kT1Tasks) * 1e9 / static_cast<double>(end - start), "tasks/s");
}

// S1: from posix_spawn of the worker to its first reply (input 41, result 42), the queues
// already existing. 2 warm-up repetitions, then 50 (--quick: 20) measured.
void s1(Channel& channel, bool quick) {
  const int measured = quick ? 20 : 50;
  std::vector<double> samples;
  for (int i = 0; i < 2 + measured; ++i) {
    const std::uint64_t t0 = now_ns();
    const pid_t pid = channel.spawn_worker();
    send_u64(channel.requests(), 41);
    const std::uint64_t r = recv_u64(channel.responses());
    const std::uint64_t t1 = now_ns();
    if (r != 42) wrong("S1 got %" PRIu64, r);
    channel.stop_worker(pid);  // teardown is not timed
    if (i >= 2) samples.push_back(static_cast<double>(t1 - t0) / 1e6);
  }
  print_line("S1", kImpl, "p50_ms", percentile_nearest_rank(samples, 0.50), "ms");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 5 && std::string_view(argv[1]) == "--worker") {
    try {
      return worker_main(argv[2], argv[3], static_cast<pid_t>(std::atoi(argv[4])));
    } catch (const std::exception& e) {
      std::fprintf(stderr, "procpool-peer-boost-mq worker: %s\n", e.what());
      return 2;
    }
  }
  const bool quick = has_flag(argc, argv, "--quick");
  arm_watchdog(300);
  try {
    Channel channel;
    if (wants(argc, argv, "L1")) l1(channel);
    if (wants(argc, argv, "T1")) {
      t1(channel, 1);
      t1(channel, 2);
    }
    if (wants(argc, argv, "S1")) s1(channel, quick);
  } catch (const std::exception& e) {
    errno = 0;
    fail("boost-mq: %s", e.what());
  }
  return 0;
}
