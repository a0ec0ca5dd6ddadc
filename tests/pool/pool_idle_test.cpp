// An idle pool sleeps: no worker thread and no supervisor thread wakes on a timer it does not
// need. Counted as the kernel counts it, in voluntary context switches (/proc/.../status), over
// two seconds of idleness: the window is the measurement, not a wait for an event.
#include <gtest/gtest.h>
#include <signal.h>  // kill, SIGSTOP, SIGCONT

#include <chrono>      // durations
#include <filesystem>  // /proc/<pid>/task
#include <fstream>     // status files
#include <set>         // thread ids
#include <string>      // std::string
#include <thread>      // std::this_thread::sleep_for
#include <vector>      // the workers

#include "pool_test_support.hpp"  // value_of, poll_until, outcome_of
#include "procpool/pool.hpp"
#include "test_workers.hpp"  // small_pool

namespace procpool::test {
namespace {

using namespace std::chrono_literals;

std::set<std::string> threads_of(const std::string& pid) {
  std::set<std::string> tids;
  std::error_code ignored;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/" + pid + "/task", ignored)) {
    tids.insert(entry.path().filename().string());
  }
  return tids;
}

long long voluntary_switches(const std::string& pid, const std::string& tid) {
  std::ifstream in("/proc/" + pid + "/task/" + tid + "/status");
  std::string key;
  while (in >> key) {
    if (key == "voluntary_ctxt_switches:") {
      long long count = 0;
      in >> count;
      return count;
    }
  }
  return 0;
}

TEST(PoolIdle, AnIdlePoolsThreadsSleep) {
#if defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "ThreadSanitizer's runtime wakes a thread of its own in every worker";
#endif
  const std::string self = std::to_string(::getpid());
  const std::set<std::string> before = threads_of(self);
  Pool pool(small_pool("echo", 2));
  // The pool's own threads: the ones that exist now and did not before.
  std::set<std::pair<std::string, std::string>> watched;  // (pid, tid)
  for (const std::string& tid : threads_of(self)) {
    if (before.count(tid) == 0) watched.insert({self, tid});
  }
  for (int i = 0; i < 2; ++i) {
    auto echoed = pool.submit("echo", "warm");
    EXPECT_EQ(value_of(echoed), "warm");
  }
  // Each worker's heartbeat thread starts after its READY is out, so it may not exist yet
  // (a sanitizer build's worker was seen with one thread here).
  const std::vector<WorkerMetrics> workers = pool.metrics().workers;
  ASSERT_TRUE(poll_until([&] {
    for (const WorkerMetrics& w : workers) {
      if (threads_of(std::to_string(w.pid)).size() < 2) return false;
    }
    return true;
  })) << "a worker never had its two threads";
  for (const WorkerMetrics& w : workers) {
    for (const std::string& tid : threads_of(std::to_string(w.pid))) {
      watched.insert({std::to_string(w.pid), tid});
    }
  }
  ASSERT_GE(watched.size(), 5u) << "the supervisor thread and two threads per worker";
  const auto count = [&] {
    long long total = 0;
    for (const auto& [pid, tid] : watched) total += voluntary_switches(pid, tid);
    return total;
  };
  // Settling: the last answers' spin windows and the heartbeat threads' last beats.
  std::this_thread::sleep_for(500ms);
  const long long start = count();
  std::this_thread::sleep_for(2s);
  const long long woken = count() - start;
  // The supervisor thread looks once more a hang bound (heartbeat_interval x heartbeat_misses,
  // 500 ms by default) after the last dispatch, then sleeps until a real deadline: none here.
  // Slack for one stray wake-up per thread. Before, every thread woke each heartbeat interval
  // (about 100 times), and later the supervisor thread once per hang bound (4 times).
  EXPECT_LE(woken, static_cast<long long>(watched.size())) << watched.size() << " threads";
}

// The other half of sleeping until a real deadline: a task dispatched after the pool was idle
// for several hang bounds, while the supervisor thread sleeps with no deadline, still has its
// hang noticed. The worker is frozen (SIGSTOP) mid-task: if nothing looked at its heartbeat,
// the task would never be answered and the bounded wait below would fail the test.
TEST(PoolIdle, AHangAfterALongIdleIsStillNoticed) {
  Pool pool(small_pool("crashy", 1));
  auto warm = pool.submit("echo", "warm");
  EXPECT_EQ(value_of(warm), "warm");
  const int worker = pool.metrics().workers.at(0).pid;
  std::this_thread::sleep_for(1500ms);  // idle: three hang bounds of the default options
  auto task = pool.submit("sleep", "2000");
  ASSERT_TRUE(poll_until([&] { return pool.metrics().running == 1; }));
  struct Thaw {
    int pid;
    ~Thaw() { ::kill(pid, SIGCONT); }
  } thaw{worker};
  ASSERT_EQ(::kill(worker, SIGSTOP), 0);
  // Killed as hung, then answered by its retry or failed: either way, answered.
  const Outcome out = outcome_of(task, 20s);
  EXPECT_TRUE(out.value || out.error) << out.describe();
  EXPECT_GE(pool.metrics().restarts, 1u) << out.describe();
  EXPECT_NE(pool.metrics().workers.at(0).pid, worker);
}

}  // namespace
}  // namespace procpool::test
