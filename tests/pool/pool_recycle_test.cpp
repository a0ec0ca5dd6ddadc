// Recycling of procpool::Pool workers (docs/pool.md, "Recycling"): the replacement starts first.
// After max_tasks_per_worker the old worker drains while its replacement starts; above max_rss it
// serves until its replacement is READY. A replacement that cannot start leaves the old worker
// serving, and an old worker that dies meanwhile is not replaced twice. Real worker processes
// (the crashy example worker, behind a script that can make its starts fail).
//
// Every wait is bounded (pool_test_support.hpp): futures with a bound, events waited for with a
// bound (EventLog), states polled with a bound, and a per-test watchdog for the rest.

#include <gtest/gtest.h>
#include <sys/stat.h>  // chmod
#include <unistd.h>    // getpid

#include <cstdint>     // std::uint64_t
#include <filesystem>  // std::filesystem
#include <fstream>     // std::ofstream
#include <memory>      // std::make_shared
#include <optional>    // std::optional
#include <string>      // std::string

#include "pool_fault_support.hpp"    // PoolFault, pid_of, slot_metrics, replaced_since
#include "pool_restart_support.hpp"  // EventLog, kill_worker
#include "pool_test_support.hpp"     // bounded waits, poll_until
#include "procpool/pool.hpp"

namespace procpool::test {
namespace {

using Event = PoolEvent::Kind;

constexpr std::uint64_t kMiB = 1024 * 1024;

auto exited(int pid) {
  return [pid](const PoolEvent& e) { return e.kind == Event::WorkerExited && e.pid == pid; };
}

// An event of a process started after `incarnation`, in any slot.
auto later(Event kind, std::uint64_t incarnation) {
  return [kind, incarnation](const PoolEvent& e) {
    return e.kind == kind && e.incarnation > incarnation;
  };
}

// The crashy worker behind a script that exits 3 before READY while a marker file exists: a
// deployment whose new starts fail while the running worker is fine.
class StartSwitch {
 public:
  StartSwitch()
      : dir_(std::filesystem::temp_directory_path() /
             ("procpool-recycle-" + std::to_string(::getpid()))) {
    std::filesystem::create_directories(dir_);
    std::ofstream(script()) << "#!/bin/sh\n[ -e '" << marker().string() << "' ] && exit 3\nexec '"
                            << worker_path("crashy") << "' \"$@\"\n";
    ::chmod(script().c_str(), 0700);
  }
  ~StartSwitch() { std::filesystem::remove_all(dir_); }
  StartSwitch(const StartSwitch&) = delete;
  StartSwitch& operator=(const StartSwitch&) = delete;

  std::string executable() const { return script().string(); }
  void fail_starts() const { std::ofstream(marker()) << "x"; }
  void allow_starts() const { std::filesystem::remove(marker()); }

 private:
  std::filesystem::path script() const { return dir_ / "worker.sh"; }
  std::filesystem::path marker() const { return dir_ / "fail-starts"; }
  std::filesystem::path dir_;
};

// The quota reached, the worker takes no new task but finishes the one it runs; its replacement
// is READY and serving meanwhile, instead of starting only after the old one exited.
TEST_F(PoolFault, AWorkerAtMaxTasksIsReplacedWhileItFinishesItsLastTask) {
  EventLog events;
  PoolOptions options = crashy();
  options.max_tasks_per_worker = 2;  // what this test is about
  options.on_event = events.callback();
  Pool pool(options);
  const std::uint64_t incarnation = slot_metrics(pool)->incarnation;
  const int old_pid = pid_of(pool);  // task 1
  auto cancel = std::make_shared<CancelSource>();
  TaskOptions last;
  last.cancel = cancel;
  auto running = pool.submit("sleep", "60000", last);  // task 2: the quota
  ASSERT_TRUE(events.wait_for(later(Event::WorkerReady, incarnation)))
      << "no replacement became READY: " << events.describe();
  EXPECT_FALSE(events.wait_for(exited(old_pid), 0, std::chrono::milliseconds(0)))
      << "the old worker exited before its replacement was READY: " << events.describe();
  const int new_pid = pid_of(pool);
  EXPECT_NE(new_pid, old_pid) << "a worker past its quota took a new task";
  cancel->cancel();
  const auto error = error_of(running);
  ASSERT_TRUE(error);
  EXPECT_EQ(error->kind(), TaskError::Kind::Cancelled) << error->what();
  const auto exit_seen = events.wait_for(exited(old_pid));
  ASSERT_TRUE(exit_seen) << "the old worker did not exit: " << events.describe();
  EXPECT_FALSE(events.seen()[*exit_seen].event.counted) << "a recycle is not a broken start";
  EXPECT_TRUE(poll_until([&] { return replaced_since(pool, incarnation); }))
      << "the pool did not settle on one READY worker";
  EXPECT_EQ(pool.metrics().restarts, 0u) << "a recycle is not a restart";
}

// Above max_rss the worker is big, not broken: it goes on serving until its replacement is READY,
// so the pool never has fewer workers taking tasks.
TEST_F(PoolFault, AWorkerAboveMaxRssServesUntilItsReplacementIsReady) {
  EventLog events;
  PoolOptions options = crashy();
  options.max_rss = 96 * kMiB;  // what this test is about
  options.on_event = events.callback();
  Pool pool(options);
  const std::uint64_t incarnation = slot_metrics(pool)->incarnation;
  const int old_pid = pid_of(pool);
  auto big = pool.submit("alloc", "160");
  EXPECT_EQ(value_of(big), "ok");
  const auto ready = events.wait_for(later(Event::WorkerReady, incarnation));
  ASSERT_TRUE(ready) << "no replacement became READY: " << events.describe();
  const auto exit_seen = events.wait_for(exited(old_pid));
  ASSERT_TRUE(exit_seen) << "the worker above max_rss was not recycled: " << events.describe();
  EXPECT_LT(*ready, *exit_seen) << "the old worker stopped before its replacement was READY: "
                                << events.describe();
  EXPECT_FALSE(events.seen()[*exit_seen].event.counted);
  ASSERT_TRUE(poll_until([&] { return replaced_since(pool, incarnation); }));
  EXPECT_NE(pid_of(pool), old_pid);
  EXPECT_EQ(pool.metrics().restarts, 0u) << "a recycle is not a restart";
}

// Brings a worker above max_rss while new starts fail; returns the old worker's pid once two
// replacements have failed to start.
int recycle_with_failing_starts(Pool& pool, EventLog& events, const StartSwitch& starts,
                                std::uint64_t incarnation) {
  const int old_pid = pid_of(pool);
  starts.fail_starts();
  auto big = pool.submit("alloc", "160");
  EXPECT_EQ(value_of(big), "ok");
  const auto first = events.wait_for(later(Event::WorkerExited, incarnation));
  EXPECT_TRUE(first) << "no replacement was tried: " << events.describe();
  if (!first) return old_pid;
  EXPECT_TRUE(events.wait_for(later(Event::WorkerExited, incarnation), *first + 1))
      << "the failed replacement was not retried: " << events.describe();
  return old_pid;
}

TEST_F(PoolFault, AReplacementThatCannotStartLeavesTheOldWorkerServing) {
  const StartSwitch starts;
  EventLog events;
  PoolOptions options = crashy();
  options.executable = starts.executable();
  options.max_rss = 96 * kMiB;  // what this test is about
  options.on_event = events.callback();
  Pool pool(options);
  const std::uint64_t incarnation = slot_metrics(pool)->incarnation;
  const int old_pid = recycle_with_failing_starts(pool, events, starts, incarnation);
  EXPECT_EQ(pid_of(pool), old_pid) << "the old worker stopped serving";
  EXPECT_FALSE(events.wait_for(exited(old_pid), 0, std::chrono::milliseconds(0)));
  starts.allow_starts();
  ASSERT_TRUE(poll_until([&] { return replaced_since(pool, incarnation); }))
      << "the replacement never took over: " << events.describe();
  EXPECT_NE(pid_of(pool), old_pid);
}

// The old worker dies while its replacement is still trying to start: the replacement is its
// restart, and the old slot stays empty (no second worker for one).
TEST_F(PoolFault, AWorkerDueForRecyclingThatDiesIsNotReplacedTwice) {
  const StartSwitch starts;
  EventLog events;
  PoolOptions options = crashy();
  options.executable = starts.executable();
  options.max_rss = 96 * kMiB;  // what this test is about
  options.on_event = events.callback();
  Pool pool(options);
  const std::optional<WorkerMetrics> old = slot_metrics(pool);
  ASSERT_TRUE(old);
  const int old_pid = recycle_with_failing_starts(pool, events, starts, old->incarnation);
  const std::uint64_t restarts = pool.metrics().restarts;
  kill_worker(old_pid);
  ASSERT_TRUE(events.wait_for(exited(old_pid))) << events.describe();
  EXPECT_FALSE(slot_metrics(pool, old->slot)) << "the old slot was refilled as well";
  EXPECT_GT(pool.metrics().restarts, restarts) << "the death was not counted as a restart";
  starts.allow_starts();
  ASSERT_TRUE(poll_until([&] { return replaced_since(pool, old->incarnation); }))
      << "the replacement never took over: " << events.describe();
  EXPECT_NE(pid_of(pool), old_pid);
  EXPECT_EQ(pool.metrics().workers.size(), 1u);
}

// A shutdown while a replacement keeps failing to start: the old worker finishes, nothing more is
// started, and shutdown() returns.
TEST_F(PoolFault, AShutdownDuringARecycleStopsTheOldWorkerAndTheReplacement) {
  const StartSwitch starts;
  EventLog events;
  PoolOptions options = crashy();
  options.executable = starts.executable();
  options.max_rss = 96 * kMiB;  // what this test is about
  options.on_event = events.callback();
  Pool pool(options);
  const std::uint64_t incarnation = slot_metrics(pool)->incarnation;
  const int old_pid = recycle_with_failing_starts(pool, events, starts, incarnation);
  auto queued = pool.submit("echo", "last");
  bounded("shutdown()", [&] { pool.shutdown(); });
  EXPECT_EQ(value_of(queued), "last");
  EXPECT_TRUE(events.wait_for(exited(old_pid))) << events.describe();
  EXPECT_TRUE(pool.metrics().workers.empty()) << "a worker outlived shutdown()";
}

}  // namespace
}  // namespace procpool::test
