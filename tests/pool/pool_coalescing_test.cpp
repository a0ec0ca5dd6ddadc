// Coalescing (supervisor/pool/coalescing.cpp): plain tasks queued while the workers are busy go
// packed into one frame, and each is still answered once, with its own result. A worker that
// dies with a coalesced frame on board costs its members nothing: they go again, alone, and only
// the task that kills workers fails.
//
// Default options throughout, with real worker processes (the crashy example worker). The queue
// is made to hold the tasks by submitting them in one submit_batch call, which keeps the pool
// lock until every task is queued; the workers' measured depth (from a warm-up) then lets the
// dispatcher pack them. Every wait is bounded.

#include <gtest/gtest.h>
#include <signal.h>  // kill, SIGKILL

#include <atomic>              // the kills
#include <chrono>              // bounds
#include <condition_variable>  // waiting for the callbacks
#include <cstdint>             // std::int64_t
#include <mutex>               // the tallies
#include <optional>            // errors
#include <set>                 // the poison indices
#include <string>              // payloads
#include <string_view>         // payload views
#include <vector>              // tallies

#include "pool_restart_support.hpp"  // pool_of, expect_serves
#include "pool_test_support.hpp"     // Watchdog, value_of, kBound, overran
#include "procpool/pool.hpp"

namespace procpool::test {
namespace {

using namespace std::chrono_literals;
using Kind = TaskError::Kind;

constexpr auto kTestBound = std::chrono::seconds(90);

// Every task's outcomes, by index: how many callbacks it got, and the last one's value or error.
class Tally {
 public:
  explicit Tally(std::size_t n) : calls_(n, 0), values_(n), errors_(n) {}

  void record(std::size_t index, const TaskOutcome& outcome) {
    std::lock_guard lock(mutex_);
    ++calls_[index];
    if (outcome.ok()) {
      values_[index] = std::string(outcome.value());
    } else {
      errors_[index] = *outcome.error();
    }
    ++total_;
    changed_.notify_all();  // under the lock: the waiter may destroy this on return
  }

  void wait_all(std::chrono::milliseconds bound = kBound) {
    std::unique_lock lock(mutex_);
    if (!changed_.wait_for(lock, bound, [&] { return total_ >= calls_.size(); })) {
      overran("waiting for " + std::to_string(calls_.size()) + " callbacks (" +
                  std::to_string(total_) + " ran)",
              bound);
    }
  }

  std::size_t total() const {
    std::lock_guard lock(mutex_);
    return total_;
  }
  int calls(std::size_t i) const {
    std::lock_guard lock(mutex_);
    return calls_[i];
  }
  std::optional<std::string> value(std::size_t i) const {
    std::lock_guard lock(mutex_);
    return errors_[i] ? std::nullopt : values_[i];
  }
  std::optional<TaskError> error(std::size_t i) const {
    std::lock_guard lock(mutex_);
    return errors_[i];
  }

 private:
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<int> calls_;
  std::vector<std::optional<std::string>> values_;
  std::vector<std::optional<TaskError>> errors_;
  std::size_t total_ = 0;
};

// Answers measured: the adaptive depth (and so a frame's size) comes from them. A batch keeps
// the worker busy, so each sample is the time between two answers; tasks submitted one at a
// time would measure the worker's wake-up too, which on a loaded machine takes milliseconds
// and leaves a depth of 1 (nothing packed).
constexpr std::size_t kWarm = 2048;

void warm_up(Pool& pool, const std::string& handler, const std::string& payload) {
  const std::vector<std::string_view> input(kWarm, payload);
  Tally tally(kWarm);
  pool.submit_batch(handler, input, {},
                    [&](std::size_t i, const TaskOutcome& outcome) { tally.record(i, outcome); });
  tally.wait_all();
  for (std::size_t i = 0; i < kWarm; ++i) ASSERT_TRUE(tally.value(i)) << "warm-up task " << i;
}

std::vector<std::string> numbered(std::size_t n) {
  std::vector<std::string> payloads;
  payloads.reserve(n);
  for (std::size_t i = 0; i < n; ++i) payloads.push_back(std::to_string(i));
  return payloads;
}

std::vector<std::string_view> views(const std::vector<std::string>& payloads) {
  return {payloads.begin(), payloads.end()};
}

TEST(PoolCoalescing, QueuedTasksShareFramesAndEachGetsItsOwnResultOnce) {
  Watchdog watchdog(kTestBound);
  Pool pool(pool_of("crashy", 2));
  warm_up(pool, "echo", "warm");
  constexpr std::size_t kTasks = 20000;
  const std::vector<std::string> payloads = numbered(kTasks);
  const std::vector<std::string_view> input = views(payloads);
  Tally tally(kTasks);
  pool.submit_batch("echo", input, {},
                    [&](std::size_t i, const TaskOutcome& outcome) { tally.record(i, outcome); });
  tally.wait_all();
  std::size_t wrong = 0;
  for (std::size_t i = 0; i < kTasks; ++i) {
    if (tally.calls(i) != 1 || tally.value(i) != payloads[i]) {
      if (++wrong <= 5) {
        ADD_FAILURE() << "task " << i << ": " << tally.calls(i) << " callbacks, "
                      << (tally.value(i) ? "value " + *tally.value(i)
                                         : std::string(tally.error(i)->what()));
      }
    }
  }
  EXPECT_EQ(wrong, 0u);
  const PoolMetrics metrics = pool.metrics();
  EXPECT_GT(metrics.coalesced, 0u) << "no task was packed with others";
  EXPECT_EQ(metrics.completed, kTasks + kWarm);
  EXPECT_EQ(metrics.failed, 0u);
  EXPECT_EQ(metrics.running, 0u);
}

// A coalesced task whose handler throws reports the same as one sent alone: its message, the
// exception's type and a TaskFailure's code.
TEST(PoolCoalescing, ACoalescedTasksErrorCarriesItsExceptionsTypeAndCode) {
  Watchdog watchdog(kTestBound);
  Pool pool(pool_of("crashy", 2));
  warm_up(pool, "echo", "warm");
  constexpr std::size_t kTasks = 20000;
  std::vector<std::string> payloads;
  for (std::size_t i = 0; i < kTasks; ++i) payloads.push_back(std::to_string(i) + " item");
  const std::vector<std::string_view> input = views(payloads);
  Tally tally(kTasks);
  pool.submit_batch("throw_failure", input, {},
                    [&](std::size_t i, const TaskOutcome& outcome) { tally.record(i, outcome); });
  tally.wait_all();
  std::size_t wrong = 0;
  for (std::size_t i = 0; i < kTasks; ++i) {
    const std::optional<TaskError> error = tally.error(i);
    if (tally.calls(i) != 1 || !error || error->kind() != Kind::HandlerError ||
        error->exception_type() != "procpool::TaskFailure" ||
        error->code() != static_cast<std::int64_t>(i) || std::string(error->what()) != "item") {
      if (++wrong <= 5) {
        ADD_FAILURE() << "task " << i << ": " << tally.calls(i) << " callbacks, "
                      << (error ? std::string(error->exception_type()) + " " + error->what()
                                : std::string("no error"));
      }
    }
  }
  EXPECT_EQ(wrong, 0u);
  EXPECT_GT(pool.metrics().coalesced, 0u) << "no task was packed with others";
}

// Poison tasks among 20,000 good ones, packed in frames with them, and two workers SIGKILLed from
// outside mid-run: every task is answered exactly once; each poison task fails WorkerCrashed;
// every other task gets its own result, except at most one per outside kill (the task the
// victim was running, if it ran alone: default max_attempts is 1).
TEST(PoolCoalescing, CoalescedFramesUnderCrashesAnswerEveryTaskExactlyOnce) {
  Watchdog watchdog(kTestBound);
  Pool pool(pool_of("crashy", 2));
  warm_up(pool, "poison", "warm");
  constexpr std::size_t kTasks = 20000;
  const std::set<std::size_t> poison = {2500, 10000, 17500};
  std::vector<std::string> payloads = numbered(kTasks);
  for (const std::size_t i : poison) payloads[i] = "poison";
  const std::vector<std::string_view> input = views(payloads);
  Tally tally(kTasks);
  // The victims: the worker that answered the 5,000th and the 12,000th callback.
  constexpr std::size_t kKillAt[] = {5000, 12000};
  std::atomic<std::size_t> seen{0};
  std::atomic<int> kills{0};
  pool.submit_batch("poison", input, {}, [&](std::size_t i, const TaskOutcome& outcome) {
    const std::size_t n = ++seen;
    if ((n == kKillAt[0] || n == kKillAt[1]) && outcome.worker_pid() > 0 &&
        ::kill(outcome.worker_pid(), SIGKILL) == 0) {
      ++kills;
    }
    tally.record(i, outcome);
  });
  tally.wait_all(60s);

  std::size_t good = 0, bad_good = 0;
  for (std::size_t i = 0; i < kTasks; ++i) {
    ASSERT_EQ(tally.calls(i), 1) << "task " << i;
    if (poison.count(i) != 0) {
      const auto error = tally.error(i);
      ASSERT_TRUE(error) << "poison task " << i << " succeeded";
      EXPECT_EQ(error->kind(), Kind::WorkerCrashed) << error->what();
      continue;
    }
    if (tally.value(i) == payloads[i]) {
      ++good;
      continue;
    }
    ++bad_good;
    const auto error = tally.error(i);
    ASSERT_TRUE(error) << "task " << i << " got " << *tally.value(i);
    EXPECT_EQ(error->kind(), Kind::WorkerCrashed) << "task " << i << ": " << error->what();
  }
  EXPECT_LE(bad_good, static_cast<std::size_t>(kills.load()));
  EXPECT_EQ(good + bad_good + poison.size(), kTasks);
  const PoolMetrics metrics = pool.metrics();
  EXPECT_GT(metrics.coalesced, 0u);
  EXPECT_GT(metrics.retried, 0u) << "no coalesced frame was taken apart";
  EXPECT_GE(metrics.restarts, poison.size());
  EXPECT_EQ(metrics.state, PoolMetrics::State::Running);
  expect_serves(pool, 10, "after the crashes ");
}

// A coalesced frame whose answers together exceed max_payload is answered as a whole with an
// error that is none of its members' doing: each goes again alone and succeeds.
TEST(PoolCoalescing, FrameWhoseAnswersDoNotFitIsTakenApartAndEachTaskSucceedsAlone) {
  Watchdog watchdog(kTestBound);
  PoolOptions options = pool_of("crashy", 1);
  options.max_payload = 1024 * 1024;  // what this test is about: answers that fit only alone
  Pool pool(options);
  // Tiny tasks first, so the worker's measured time per task is small and its adaptive depth
  // large: the first frame packs many of the tasks below, and even a slow machine (one answer
  // 15x slower than expected) leaves a depth of 2 when the next frame is packed. Two answers
  // of 600 kB already exceed max_payload, so whatever is packed is taken apart.
  warm_up(pool, "fill", "1");
  const std::string each = "600000";  // "fill": answer that many bytes
  constexpr std::size_t kTasks = 24;  // 14 MB of answers in all
  const std::vector<std::string> payloads(kTasks, each);
  const std::vector<std::string_view> input = views(payloads);
  Tally tally(kTasks);
  pool.submit_batch("fill", input, {},
                    [&](std::size_t i, const TaskOutcome& outcome) { tally.record(i, outcome); });
  tally.wait_all();
  for (std::size_t i = 0; i < kTasks; ++i) {
    ASSERT_EQ(tally.calls(i), 1) << "task " << i;
    const auto value = tally.value(i);
    ASSERT_TRUE(value) << "task " << i << ": " << tally.error(i)->what();
    EXPECT_EQ(value->size(), 600000u);
  }
  const PoolMetrics metrics = pool.metrics();
  EXPECT_GT(metrics.coalesced, 0u);
  EXPECT_EQ(metrics.failed, 0u);
}

}  // namespace
}  // namespace procpool::test
