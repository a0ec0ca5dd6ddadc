// Spawning workers after start-up, with default options: a transient spawn failure (a real
// EMFILE) and a redeploy that removes the worker binary for a while back off and recover, and
// scaling up starts one worker per spawn_interval. Each test sets only the option it is about
// (and the worker count it needs).
//
// Every wait is bounded (pool_test_support.hpp); the life-cycle events are awaited through
// PoolOptions::on_event, never after a sleep. A watchdog bounds each test.

#include <gtest/gtest.h>
#include <sys/resource.h>  // getrlimit, setrlimit, RLIMIT_NOFILE
#include <unistd.h>        // dup, close

#include <algorithm>   // std::max
#include <cerrno>      // EMFILE, ENOENT
#include <chrono>      // durations
#include <filesystem>  // copy, rename, remove
#include <future>      // std::future
#include <optional>    // std::optional
#include <string>      // std::string
#include <vector>      // std::vector

#include "pool_restart_support.hpp"
#include "pool_test_support.hpp"  // Watchdog, value_of, kind_of, poll_until, kBound
#include "procpool/pool.hpp"
#include "procpool/pool_event.hpp"
#include "temp_dir.hpp"     // TempDir
#include "test_timing.hpp"  // scaled

namespace procpool::test {
namespace {

using namespace std::chrono_literals;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;
using EventKind = PoolEvent::Kind;

constexpr milliseconds kTestBound = 110s;  // the whole test, destructors included

// ---------------------------------------------------------------------------------------------
// Spawn failures after start-up back off and retry

// The process's fd table is made full for a moment: RLIMIT_NOFILE lowered to the fds open, every
// free fd below it taken. A dead worker's restart needs more fds than its death freed (segment,
// stderr pipe, doorbell, /dev/null, the launcher's exec-error pipe, pidfd), so it fails EMFILE.
class FdTableFull {
 public:
  FdTableFull() {
    ::getrlimit(RLIMIT_NOFILE, &saved_);
    int highest = 2;
    for (const std::string& name : directory_entries("/proc/self/fd")) {
      highest = std::max(highest, std::stoi(name));
    }
    rlimit lowered = saved_;
    lowered.rlim_cur = static_cast<rlim_t>(highest) + 1;
    ok_ = ::setrlimit(RLIMIT_NOFILE, &lowered) == 0;
    for (rlim_t i = 0; ok_ && i < lowered.rlim_cur; ++i) {  // at most one per fd number
      const int fd = ::dup(0);
      if (fd < 0) break;
      taken_.push_back(fd);
    }
    ok_ = ok_ && errno == EMFILE;
  }
  ~FdTableFull() { release(); }

  bool ok() const { return ok_; }

  void release() {
    for (const int fd : taken_) ::close(fd);
    taken_.clear();
    ::setrlimit(RLIMIT_NOFILE, &saved_);
  }

 private:
  rlimit saved_{};
  std::vector<int> taken_;
  bool ok_ = false;
};

// EMFILE while a killed worker is restarted: the slot backs off and retries (SpawnFailed, then
// WorkerReady once fds are free again); the healthy worker is never stopped, and tasks succeed.
// The old policy treated every launch error like a missing binary: the pool failed for good.
TEST(PoolRestart, TransientEmfileWhileRestartingBacksOffAndRecovers) {
  // UBSan's runtime (with ASan's) opens files of its own while checking types; with the fd table
  // full it reports a false "invalid vptr" on the exception the failed spawn throws.
  if (kAddressSanitizer) GTEST_SKIP() << "the sanitizer runtime needs fds the test takes away";
  Watchdog watchdog(kTestBound);
  EventLog log;
  PoolOptions options = pool_of("echo", 2);
  options.on_event = log.callback();
  Pool pool(options);
  ASSERT_TRUE(log.wait_for(is(EventKind::WorkerReady, 0)));
  ASSERT_TRUE(log.wait_for(is(EventKind::WorkerReady, 1)));
  const WorkerMetrics victim = worker_in(pool, 0);
  const WorkerMetrics healthy = worker_in(pool, 1);
  ASSERT_GT(healthy.pid, 0);

  std::optional<std::size_t> failed;
  {
    FdTableFull full;  // no metrics() meanwhile: reading /proc needs an fd
    ASSERT_TRUE(full.ok()) << "could not fill the fd table";
    const std::size_t mark = log.size();
    kill_worker(victim.pid);
    failed = log.wait_for(is(EventKind::SpawnFailed, 0), mark);
  }
  ASSERT_TRUE(failed) << "no SpawnFailed; events: " << log.describe();
  const PoolEvent spawn_failed = log.seen()[*failed].event;
  EXPECT_EQ(spawn_failed.error_code, EMFILE) << spawn_failed.message;
  ASSERT_TRUE(log.wait_for(is(EventKind::WorkerReady, 0), *failed + 1))
      << "slot 0 did not recover; events: " << log.describe();

  EXPECT_EQ(pool.metrics().state, PoolMetrics::State::Running);
  const WorkerMetrics still = worker_in(pool, 1);
  EXPECT_EQ(still.pid, healthy.pid) << "the healthy worker was replaced";
  EXPECT_EQ(still.incarnation, healthy.incarnation);
  for (const EventLog::Seen& seen : log.seen()) {
    EXPECT_FALSE(seen.event.slot == 1 && seen.event.kind == EventKind::WorkerExited)
        << "the healthy worker exited: " << seen.event.message;
  }
  expect_serves(pool, 10, "after EMFILE ");
}

// A redeploy: the pool runs a copy of the worker binary, which is removed while a worker dies.
// Its restart fails (ENOENT) and backs off; the other worker keeps serving and the pool does not
// fail. Once a fresh copy is renamed into place, the slot comes back.
TEST(PoolRestart, WorkerBinaryMissingDuringARedeployBacksOffUntilItIsBack) {
  Watchdog watchdog(kTestBound);
  TempDir dir("procpool-redeploy");
  const std::filesystem::path binary = dir.path() / "worker";
  std::filesystem::copy_file(worker_path("crashy"), binary);
  EventLog log;
  PoolOptions options = pool_of("crashy", 2);
  options.executable = binary.string();
  options.on_event = log.callback();
  Pool pool(options);
  ASSERT_TRUE(log.wait_for(is(EventKind::WorkerReady, 0)));
  ASSERT_TRUE(log.wait_for(is(EventKind::WorkerReady, 1)));
  const WorkerMetrics victim = worker_in(pool, 0);
  const WorkerMetrics healthy = worker_in(pool, 1);

  std::filesystem::remove(binary);
  const std::size_t mark = log.size();
  kill_worker(victim.pid);
  const auto failed = log.wait_for(is(EventKind::SpawnFailed, 0), mark);
  ASSERT_TRUE(failed) << "no SpawnFailed; events: " << log.describe(mark);
  EXPECT_EQ(log.seen()[*failed].event.error_code, ENOENT) << log.seen()[*failed].event.message;
  expect_serves(pool, 10, "binary missing ");
  EXPECT_EQ(pool.metrics().state, PoolMetrics::State::Running);

  const std::filesystem::path fresh = dir.path() / "worker.new";
  std::filesystem::copy_file(worker_path("crashy"), fresh);
  std::filesystem::rename(fresh, binary);  // atomic: a start sees the old name or the new file
  ASSERT_TRUE(log.wait_for(is(EventKind::WorkerReady, 0), *failed + 1))
      << "slot 0 did not come back; events: " << log.describe(mark);
  const WorkerMetrics still = worker_in(pool, 1);
  EXPECT_EQ(still.pid, healthy.pid) << "the healthy worker was replaced";
  EXPECT_EQ(still.incarnation, healthy.incarnation);
  EXPECT_EQ(pool.metrics().state, PoolMetrics::State::Running);
  expect_serves(pool, 10, "redeployed ");
}

// ---------------------------------------------------------------------------------------------
// Scaling up

// spawn_interval (50 ms by default) as documented: a burst of long tasks on a pool of 1 to 4
// workers starts the other three at least spawn_interval apart, and not much more (the loop
// used to wake only on the heartbeat: one new worker per ~100 ms).
TEST(PoolRestart, ScaleUpStartsOneWorkerPerSpawnInterval) {
  Watchdog watchdog(kTestBound);
  EventLog log;
  PoolOptions options = pool_of("crashy", 1);
  options.max_workers = 4;
  options.on_event = log.callback();
  const milliseconds interval = options.spawn_interval;
  Pool pool(options);
  ASSERT_TRUE(log.wait_for(is(EventKind::WorkerReady, 0)));
  const std::size_t mark = log.size();
  const auto burst = Clock::now();
  std::vector<procpool::Future<std::string>> futures;
  for (int i = 0; i < 16; ++i) futures.push_back(pool.submit("sleep", "500"));
  ASSERT_TRUE(log.wait_for(is(EventKind::WorkerStarted, 3), mark)) << log.describe(mark);
  std::vector<Clock::time_point> starts;
  for (std::size_t i = mark; i < log.seen().size(); ++i) {
    const EventLog::Seen seen = log.seen()[i];
    if (seen.event.kind == EventKind::WorkerStarted) starts.push_back(seen.event.at);
  }
  ASSERT_EQ(starts.size(), 3u) << log.describe(mark);
  // The events' own times: when each start began, which spawn_interval separates (the
  // callbacks run later, each delayed by its own launch and loop pass).
  for (std::size_t i = 1; i < starts.size(); ++i) {
    EXPECT_GE(starts[i] - starts[i - 1], interval) << "start " << i;
  }
  const auto mean = (starts.back() - starts.front()) / 2;
  EXPECT_LT(mean, interval + scaled(40ms))
      << std::chrono::duration_cast<milliseconds>(mean).count() << " ms between starts";
  EXPECT_LT(starts.back() - burst, 3 * interval + scaled(100ms));
  for (auto& future : futures) EXPECT_EQ(value_of(future), "slept");
}

}  // namespace
}  // namespace procpool::test
