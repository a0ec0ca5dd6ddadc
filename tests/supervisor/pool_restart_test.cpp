// The restart policy with default options (issue 10, "The restart policy ends the pool for good"):
// external kills while tasks run, poison tasks spread among good ones, a transient spawn failure
// (a real EMFILE), a redeploy that removes the worker binary for a while, a program that falls
// over right after READY (backoff bounds, CrashLoop, give_up_after), the event callback, the
// per-slot counters, and spawn_interval. Each test sets only the option it is about (and the
// worker count it needs).
//
// Every wait is bounded (pool_test_support.hpp); the life-cycle events are awaited through
// PoolOptions::on_event, never after a sleep. A watchdog bounds each test.

#include <gtest/gtest.h>
#include <signal.h>        // kill, SIGKILL
#include <sys/resource.h>  // getrlimit, setrlimit, RLIMIT_NOFILE
#include <unistd.h>        // dup, close

#include <algorithm>           // std::max
#include <cerrno>              // EMFILE, ENOENT
#include <chrono>              // durations
#include <condition_variable>  // std::condition_variable
#include <cstdint>             // std::uint64_t
#include <cstdlib>             // mkdtemp
#include <filesystem>          // copy, rename, remove
#include <functional>          // std::function
#include <future>              // std::future
#include <mutex>               // std::mutex
#include <optional>            // std::optional
#include <stdexcept>           // std::runtime_error
#include <string>              // std::string
#include <vector>              // std::vector

#include "pool_test_support.hpp"  // Watchdog, value_of, kind_of, poll_until, kBound
#include "procpool/pool.hpp"
#include "procpool/pool_event.hpp"
#include "test_timing.hpp"  // scaled

namespace procpool::test {
namespace {

using namespace std::chrono_literals;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;
using EventKind = PoolEvent::Kind;

constexpr milliseconds kTestBound = 110s;  // the whole test, destructors included

// `workers` example workers `name`, every other option at its default.
PoolOptions pool_of(const std::string& name, unsigned workers) {
  PoolOptions options;
  options.executable = worker_path(name);
  options.min_workers = workers;
  options.max_workers = workers;
  return options;
}

// Every life-cycle event the pool reported, with when it was seen; bounded waits on them.
class EventLog {
 public:
  struct Seen {
    PoolEvent event;
    Clock::time_point at;
  };

  void record(const PoolEvent& event) {
    const auto at = Clock::now();
    std::lock_guard lock(mutex_);
    seen_.push_back({event, at});
    changed_.notify_all();
  }

  // The pool's on_event. The log must outlive the pool (declare it first).
  std::function<void(const PoolEvent&)> callback() {
    return [this](const PoolEvent& event) { record(event); };
  }

  // Waits (bounded) for an event at index `from` or later that `match` accepts; its index.
  std::optional<std::size_t> wait_for(const std::function<bool(const PoolEvent&)>& match,
                                      std::size_t from = 0, milliseconds bound = kBound) {
    std::unique_lock lock(mutex_);
    std::optional<std::size_t> found;
    changed_.wait_for(lock, bound, [&] {
      for (std::size_t i = from; i < seen_.size(); ++i) {
        if (match(seen_[i].event)) {
          found = i;
          return true;
        }
      }
      return false;
    });
    return found;
  }

  std::size_t size() const {
    std::lock_guard lock(mutex_);
    return seen_.size();
  }

  std::vector<Seen> seen() const {
    std::lock_guard lock(mutex_);
    return seen_;
  }

  // "kind(slot)" for every event from `from` on, for failure messages.
  std::string describe(std::size_t from = 0) const {
    std::lock_guard lock(mutex_);
    std::string out;
    for (std::size_t i = from; i < seen_.size(); ++i) {
      out += std::string(to_string(seen_[i].event.kind)) + "(" +
             std::to_string(seen_[i].event.slot) + ") ";
    }
    return out;
  }

 private:
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<Seen> seen_;
};

auto is(EventKind kind, unsigned slot) {
  return [kind, slot](const PoolEvent& e) { return e.kind == kind && e.slot == slot; };
}

// The metrics of `slot`'s worker (a default WorkerMetrics if the slot is empty).
WorkerMetrics worker_in(const Pool& pool, unsigned slot) {
  for (const WorkerMetrics& w : pool.metrics().workers) {
    if (w.slot == slot) return w;
  }
  return {};
}

// SIGKILLs a worker by the pid metrics() gave (still the pool's unreaped child, so the pid is
// that worker's).
void kill_worker(int pid) {
  ASSERT_GT(pid, 0);
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
}

// `count` echo tasks through the pool, each expected back as itself.
void expect_serves(Pool& pool, int count, const std::string& tag) {
  std::vector<std::future<std::string>> futures;
  for (int i = 0; i < count; ++i) futures.push_back(pool.submit("echo", tag + std::to_string(i)));
  int ok = 0;
  for (int i = 0; i < count; ++i) ok += value_of(futures[i]) == tag + std::to_string(i);
  EXPECT_EQ(ok, count) << tag;
}

// ---------------------------------------------------------------------------------------------
// Deaths with tasks on board are the tasks' problem

// A worker SIGKILLed from outside, again and again (each within a second of its READY, the old
// "start-up failure"), while tasks run: each death is charged to the task it was running and the
// worker comes back at once. The pool never fails, and every task succeeds within its attempts.
TEST(PoolRestart, RepeatedExternalKillsWhileTasksRunNeverFailThePool) {
  Watchdog watchdog(kTestBound);
  EventLog log;
  PoolOptions options = pool_of("crashy", 2);
  options.max_attempts = 6;
  options.on_event = log.callback();
  Pool pool(options);
  constexpr int kKills = 12;  // six per slot: more than the old limit of five in a row
  constexpr int kTasksPerKill = 100;
  int ok = 0;
  for (int kill = 0; kill < kKills; ++kill) {
    const unsigned slot = static_cast<unsigned>(kill % 2);
    std::vector<std::future<std::string>> futures;
    for (int i = 0; i < kTasksPerKill; ++i) futures.push_back(pool.submit("sleep", "2"));
    WorkerMetrics target;
    ASSERT_TRUE(poll_until([&] {
      target = worker_in(pool, slot);
      return target.state == WorkerMetrics::State::Ready && target.pid > 0 && target.inflight > 0;
    })) << "kill "
        << kill << ": slot " << slot << " never had tasks on board";
    const std::size_t mark = log.size();
    kill_worker(target.pid);
    ASSERT_TRUE(log.wait_for(
        [&](const PoolEvent& e) {
          return e.kind == EventKind::WorkerReady && e.slot == slot &&
                 e.incarnation > target.incarnation;
        },
        mark))
        << "kill " << kill << ": slot " << slot
        << " did not come back; events: " << log.describe(mark);
    ASSERT_EQ(pool.metrics().state, PoolMetrics::State::Running) << "after kill " << kill;
    // This round's tasks done before the next kill: the task charged for this one has run again
    // by then, so no task meets more than one kill (one attempt of six).
    for (auto& future : futures) ok += value_of(future) == "slept";
  }
  EXPECT_EQ(ok, kKills * kTasksPerKill);
  const PoolMetrics metrics = pool.metrics();
  EXPECT_EQ(metrics.state, PoolMetrics::State::Running);
  EXPECT_GE(metrics.restarts, static_cast<std::uint64_t>(kKills));
  expect_serves(pool, 10, "after the kills ");
}

// Crashing tasks far apart among good ones, with the default max_attempts (1): each crash is its
// task's failure alone. Every crashing task fails WorkerCrashed, every good task succeeds, and the
// pool keeps serving (the old policy stopped it after five of them within seconds).
TEST(PoolRestart, PoisonTasksSpreadAmongGoodOnesFailAloneAndThePoolServes) {
  Watchdog watchdog(kTestBound);
  Pool pool(pool_of("crashy", 2));
  constexpr int kPoison = 12, kGoodBetween = 200;
  std::vector<std::future<std::string>> poison, good;
  std::vector<std::string> keys;
  for (int p = 0; p <= kPoison; ++p) {
    for (int i = 0; i < kGoodBetween; ++i) {
      keys.push_back(std::to_string(p) + "." + std::to_string(i));
      good.push_back(pool.submit("echo", keys.back()));
    }
    if (p < kPoison) poison.push_back(pool.submit("segfault", ""));
  }
  for (std::size_t i = 0; i < poison.size(); ++i) {
    const auto error = error_of(poison[i]);
    ASSERT_TRUE(error) << "poison " << i;
    EXPECT_EQ(error->kind(), TaskError::Kind::WorkerCrashed) << error->what();
    EXPECT_NE(std::string(error->what()).find("SIGSEGV"), std::string::npos) << error->what();
  }
  int ok = 0;
  for (std::size_t i = 0; i < good.size(); ++i) {
    const Outcome out = outcome_of(good[i]);
    ok += out.value == keys[i];
    if (out.value != keys[i]) ADD_FAILURE() << keys[i] << ": " << out.describe();
  }
  EXPECT_EQ(ok, static_cast<int>(good.size()));
  EXPECT_EQ(pool.metrics().state, PoolMetrics::State::Running);
  expect_serves(pool, 10, "after the poison ");
}

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

// A temporary directory, removed with what is in it.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "procpool-redeploy-XXXXXX");
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// A redeploy: the pool runs a copy of the worker binary, which is removed while a worker dies.
// Its restart fails (ENOENT) and backs off; the other worker keeps serving and the pool does not
// fail. Once a fresh copy is renamed into place, the slot comes back.
TEST(PoolRestart, WorkerBinaryMissingDuringARedeployBacksOffUntilItIsBack) {
  Watchdog watchdog(kTestBound);
  TempDir dir;
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
// A program that falls over right after READY: a crash loop

PoolOptions crash_looping_pool(EventLog& log) {
  PoolOptions options = pool_of("crashy", 1);
  options.args = {"--exit-after-ready", "100"};
  options.on_event = log.callback();
  return options;
}

// Each exit while idle right after READY is a broken start: the n-th in a row waits a delay in
// [0, min(max_backoff, initial_backoff * 2^(n-1))) (full jitter over a capped exponential),
// CrashLoop is reported after crash_loop_after of them, and the slot keeps retrying: the pool
// never fails. Checked against the reported delays' bounds, not against wall-clock timings.
TEST(PoolRestart, CrashLoopBacksOffWithinTheBoundsAndNeverFailsThePool) {
  Watchdog watchdog(kTestBound);
  EventLog log;
  const PoolOptions options = crash_looping_pool(log);
  const RestartPolicy policy;  // the defaults the pool runs with
  Pool pool(options);
  constexpr unsigned kBrokenStarts = 6;
  ASSERT_TRUE(log.wait_for(
      [](const PoolEvent& e) {
        return e.kind == EventKind::WorkerRestarting && e.consecutive_failures >= kBrokenStarts;
      },
      0, 30s))
      << log.describe();
  unsigned expected = 1;
  bool crash_loop = false;
  for (const EventLog::Seen& seen : log.seen()) {
    const PoolEvent& e = seen.event;
    if (e.kind == EventKind::CrashLoop) {
      EXPECT_EQ(e.consecutive_failures, policy.crash_loop_after);
      // Reported with the death that makes it, before that death's restart.
      EXPECT_EQ(expected, policy.crash_loop_after);
      crash_loop = true;
    }
    if (e.kind == EventKind::WorkerExited) {
      EXPECT_TRUE(e.counted) << e.message;
      EXPECT_EQ(e.exit_code, 3) << e.message;
    }
    if (e.kind != EventKind::WorkerRestarting || expected > kBrokenStarts) continue;
    EXPECT_EQ(e.consecutive_failures, expected);
    const milliseconds cap =
        std::min(policy.max_backoff, policy.initial_backoff * (1 << (expected - 1)));
    EXPECT_GE(e.delay.count(), 0);
    EXPECT_LT(e.delay, cap) << "broken start " << expected;
    ++expected;
  }
  EXPECT_EQ(expected, kBrokenStarts + 1);
  EXPECT_TRUE(crash_loop) << log.describe();
  EXPECT_EQ(pool.metrics().state, PoolMetrics::State::Running);
  EXPECT_TRUE(
      poll_until([&] { return worker_in(pool, 0).state == WorkerMetrics::State::CrashLoop; }, 10s))
      << to_string(worker_in(pool, 0).state);
  EXPECT_GE(worker_in(pool, 0).consecutive_failures, policy.crash_loop_after);
}

// give_up_after, the opt-in: that many broken starts in a row fail the pool.
TEST(PoolRestart, GiveUpAfterFailsThePoolAfterThatManyBrokenStarts) {
  Watchdog watchdog(kTestBound);
  EventLog log;
  PoolOptions options = crash_looping_pool(log);
  options.restart.give_up_after = 3;
  Pool pool(options);
  ASSERT_TRUE(poll_until([&] { return pool.metrics().state == PoolMetrics::State::Failed; }, 30s))
      << to_string(pool.metrics().state) << "; events: " << log.describe();
  unsigned counted = 0;
  for (const EventLog::Seen& seen : log.seen()) {
    counted += seen.event.kind == EventKind::WorkerExited && seen.event.counted;
  }
  EXPECT_EQ(counted, 3u) << log.describe();
  auto late = pool.submit("echo", "late");
  EXPECT_EQ(kind_of(late), TaskError::Kind::PoolFailed);
}

// ---------------------------------------------------------------------------------------------
// The event callback and the metrics

// A killed worker's life, as the callback sees it: started -> ready, then exited (naming the
// signal) -> restarting -> started -> ready for the next process of the same slot.
TEST(PoolRestart, EventsFollowAKilledWorkersLife) {
  Watchdog watchdog(kTestBound);
  EventLog log;
  PoolOptions options = pool_of("echo", 1);
  options.on_event = log.callback();
  Pool pool(options);
  const auto ready = log.wait_for(is(EventKind::WorkerReady, 0));
  ASSERT_TRUE(ready);
  const WorkerMetrics first = worker_in(pool, 0);
  std::vector<EventLog::Seen> seen = log.seen();
  ASSERT_EQ(seen.size(), 2u) << log.describe();
  EXPECT_EQ(seen[0].event.kind, EventKind::WorkerStarted);
  EXPECT_EQ(seen[0].event.pid, first.pid);
  EXPECT_EQ(seen[1].event.kind, EventKind::WorkerReady);
  EXPECT_EQ(seen[1].event.incarnation, first.incarnation);

  kill_worker(first.pid);
  ASSERT_TRUE(log.wait_for(is(EventKind::WorkerReady, 0), 2)) << log.describe();
  seen = log.seen();
  ASSERT_EQ(seen.size(), 6u) << log.describe();
  const PoolEvent& exited = seen[2].event;
  EXPECT_EQ(exited.kind, EventKind::WorkerExited);
  EXPECT_EQ(exited.pid, first.pid);
  EXPECT_EQ(exited.incarnation, first.incarnation);
  EXPECT_EQ(exited.signal, SIGKILL);
  EXPECT_EQ(exited.exit_code, -1);
  EXPECT_NE(exited.message.find("SIGKILL"), std::string::npos) << exited.message;
  const PoolEvent& restarting = seen[3].event;
  EXPECT_EQ(restarting.kind, EventKind::WorkerRestarting);
  EXPECT_LT(restarting.delay, RestartPolicy{}.initial_backoff);
  const PoolEvent& started = seen[4].event;
  EXPECT_EQ(started.kind, EventKind::WorkerStarted);
  EXPECT_GT(started.incarnation, first.incarnation);
  EXPECT_NE(started.pid, first.pid);
  EXPECT_EQ(seen[5].event.kind, EventKind::WorkerReady);
  EXPECT_EQ(seen[5].event.incarnation, started.incarnation);
  for (const EventLog::Seen& s : seen) EXPECT_EQ(s.event.slot, 0u);
  expect_serves(pool, 5, "after the restart ");
}

// A callback that throws on every event: caught and reported on stderr; the pool starts, serves,
// restarts a killed worker (the callback still sees every event) and serves again.
TEST(PoolRestart, ThrowingEventCallbackIsCaughtAndThePoolGoesOn) {
  Watchdog watchdog(kTestBound);
  EventLog log;
  PoolOptions options = pool_of("echo", 1);
  options.on_event = [&log](const PoolEvent& event) {
    log.record(event);
    throw std::runtime_error("on_event throws as asked");
  };
  ::testing::internal::CaptureStderr();
  std::string captured;
  {
    Pool pool(options);
    expect_serves(pool, 5, "before ");
    const WorkerMetrics first = worker_in(pool, 0);
    const std::size_t mark = log.size();
    kill_worker(first.pid);
    EXPECT_TRUE(log.wait_for(is(EventKind::WorkerReady, 0), mark)) << log.describe();
    expect_serves(pool, 5, "after ");
    EXPECT_EQ(pool.metrics().state, PoolMetrics::State::Running);
  }
  captured = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(captured.find("PoolOptions::on_event threw: on_event throws as asked"),
            std::string::npos)
      << captured;
}

// Per-slot counters add up over the slot's processes while the per-process ones start again;
// last_active_unix_s moves forward.
TEST(PoolRestart, PerSlotCountersSurviveRestarts) {
  Watchdog watchdog(kTestBound);
  EventLog log;
  PoolOptions options = pool_of("crashy", 1);
  options.on_event = log.callback();
  Pool pool(options);
  auto run = [&](int good, int bad) {
    std::vector<std::future<std::string>> ok, failing;
    for (int i = 0; i < good; ++i) ok.push_back(pool.submit("echo", "x"));
    for (int i = 0; i < bad; ++i) failing.push_back(pool.submit("throw", "as asked"));
    for (auto& f : ok) EXPECT_EQ(value_of(f), "x");
    for (auto& f : failing) EXPECT_EQ(kind_of(f), TaskError::Kind::HandlerError);
  };
  run(20, 2);
  const WorkerMetrics before = worker_in(pool, 0);
  EXPECT_EQ(before.tasks_done, 20u);
  EXPECT_EQ(before.tasks_failed, 2u);
  EXPECT_EQ(before.slot_tasks_done, 20u);
  EXPECT_EQ(before.slot_tasks_failed, 2u);
  EXPECT_GT(before.last_active_unix_s, 0);

  const std::size_t mark = log.size();
  kill_worker(before.pid);
  ASSERT_TRUE(log.wait_for(is(EventKind::WorkerReady, 0), mark)) << log.describe(mark);
  const WorkerMetrics restarted = worker_in(pool, 0);
  EXPECT_GT(restarted.incarnation, before.incarnation);
  EXPECT_EQ(restarted.tasks_done, 0u);
  EXPECT_EQ(restarted.slot_tasks_done, 20u);
  EXPECT_EQ(restarted.slot_tasks_failed, 2u);

  run(15, 1);
  const WorkerMetrics after = worker_in(pool, 0);
  EXPECT_EQ(after.incarnation, restarted.incarnation);
  EXPECT_EQ(after.tasks_done, 15u);
  EXPECT_EQ(after.tasks_failed, 1u);
  EXPECT_EQ(after.slot_tasks_done, 35u);
  EXPECT_EQ(after.slot_tasks_failed, 3u);
  EXPECT_GT(after.last_active_unix_s, before.last_active_unix_s);
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
  std::vector<std::future<std::string>> futures;
  for (int i = 0; i < 16; ++i) futures.push_back(pool.submit("sleep", "500"));
  ASSERT_TRUE(log.wait_for(is(EventKind::WorkerStarted, 3), mark)) << log.describe(mark);
  std::vector<Clock::time_point> starts;
  for (std::size_t i = mark; i < log.seen().size(); ++i) {
    const EventLog::Seen seen = log.seen()[i];
    if (seen.event.kind == EventKind::WorkerStarted) starts.push_back(seen.at);
  }
  ASSERT_EQ(starts.size(), 3u) << log.describe(mark);
  // The callback runs a little after the spawn it reports (the rest of that loop pass): a
  // tenth of the interval of tolerance on each gap.
  for (std::size_t i = 1; i < starts.size(); ++i) {
    EXPECT_GE(starts[i] - starts[i - 1], interval - interval / 10) << "start " << i;
  }
  const auto mean = (starts.back() - starts.front()) / 2;
  EXPECT_LT(mean, interval + scaled(40ms))
      << std::chrono::duration_cast<milliseconds>(mean).count() << " ms between starts";
  EXPECT_LT(starts.back() - burst, 3 * interval + scaled(100ms));
  for (auto& future : futures) EXPECT_EQ(value_of(future), "slept");
}

}  // namespace
}  // namespace procpool::test
