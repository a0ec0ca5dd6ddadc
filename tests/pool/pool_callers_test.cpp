// While callers drive the pool (submit, get and wait_idle drain the result rings themselves),
// the supervisor thread steps aside: it naps instead of spinning and taking the pool's lock
// (pool_core.hpp, caller_turns_; docs/pool.md, "Waiting"). These pin what it must still do
// meanwhile: take over once the callers stop, run its timers, and notice a death.
#include <gtest/gtest.h>
#include <signal.h>  // kill, SIGSTOP, SIGCONT, SIGKILL

#include <atomic>  // callback counts
#include <chrono>  // durations
#include <string>  // payloads
#include <vector>  // payloads

#include "pool_test_support.hpp"  // Callbacks, outcome_of, poll_until, kBound
#include "procpool/pool.hpp"
#include "test_workers.hpp"  // small_pool

namespace procpool::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// Keeps a caller driving the pool with tiny tasks (echo, with callbacks): each submit works the
// rings under the pool's lock, and it never waits in the pool (a wait would kick the supervisor
// thread awake), nor pauses while fewer than kMaxOutstanding are unanswered (a pause is a hand-
// over to the supervisor thread, which would hide what it does while callers drive). Runs until
// `done()` or `bound`; returns whether done() held, once every echo it submitted was answered. An
// echo answers its own key, or fails WorkerCrashed if it was on a worker that died (counted in
// `crashed`).
constexpr std::size_t kMaxOutstanding = 65536;

template <class Done>
bool drive_until(Pool& pool, Done&& done, std::chrono::milliseconds bound, std::size_t& echoes,
                 std::size_t& crashed) {
  std::atomic<std::size_t> answered{0}, wrong{0}, lost{0};
  std::mutex first_wrong_mutex;
  std::string first_wrong;  // what the first wrong answer was, for the failure message
  auto note_wrong = [&](std::string what) {
    if (wrong.fetch_add(1) == 0) {
      const std::lock_guard lock(first_wrong_mutex);
      first_wrong = std::move(what);
    }
  };
  std::size_t submitted = 0;
  const auto deadline = Clock::now() + bound;
  bool held = true;
  while (!done()) {
    if (Clock::now() >= deadline) {
      held = false;
      break;
    }
    if (submitted - answered.load() >= kMaxOutstanding) continue;
    const std::string key = "e" + std::to_string(submitted++);
    pool.submit("echo", key, {}, [&, key](const TaskOutcome& outcome) {
      if (outcome.ok()) {
        if (outcome.value() != key) note_wrong(key + " answered " + std::string(outcome.value()));
      } else if (outcome.error()->kind() == TaskError::Kind::WorkerCrashed) {
        ++lost;
      } else {
        note_wrong(key + " failed " + std::string(to_string(outcome.error()->kind())) + ": " +
                   outcome.error()->what());
      }
      answered.fetch_add(1);
    });
  }
  EXPECT_TRUE(poll_until([&] { return answered.load() == submitted; }, kBound))
      << answered.load() << " of " << submitted << " echoes answered";
  EXPECT_EQ(wrong.load(), 0u) << "the first: " << [&] {
    const std::lock_guard lock(first_wrong_mutex);
    return first_wrong;
  }();
  echoes = submitted;
  crashed = lost.load();
  return held;
}

// A worker frozen mid-task (SIGSTOP) while another thread keeps the pool busy without pause:
// the supervisor thread, stepping aside for that caller, must still run its timers, so the
// frozen worker's missing heartbeat is noticed and its task answered (retried or failed).
TEST(PoolCallers, AHangIsNoticedWhileACallerKeepsThePoolBusy) {
  Pool pool(small_pool("crashy", 2));
  auto warm = pool.submit("echo", "warm");
  ASSERT_EQ(value_of(warm), "warm");
  auto task = pool.submit("sleep", "2000");
  int frozen = 0;
  ASSERT_TRUE(poll_until([&] {
    for (const auto& worker : pool.metrics().workers) {
      if (worker.inflight == 1) frozen = worker.pid;
    }
    return frozen != 0;
  }));
  struct Thaw {
    int pid;
    ~Thaw() { ::kill(pid, SIGCONT); }
  } thaw{frozen};
  ASSERT_EQ(::kill(frozen, SIGSTOP), 0);
  std::atomic<bool> done{false};
  task.then([&done](Future<std::string>) { done = true; });
  std::size_t echoes = 0, crashed = 0;
  const bool answered = drive_until(
      pool, [&] { return done.load(); }, 10s, echoes, crashed);
  ASSERT_TRUE(answered) << "the frozen worker's task was not answered while a caller drove "
                        << "the pool (" << echoes << " echoes ran meanwhile)";
  EXPECT_GE(pool.metrics().restarts, 1u);
  EXPECT_GT(echoes, 0u);
}

// A submitter that hands tasks in with callbacks and then waits on its own (not in get() or
// wait_idle()): the supervisor thread takes over the draining once the submitter stops calling.
TEST(PoolCallers, CallbacksArriveOnceTheSubmitterStopsCalling) {
  Pool pool(small_pool("echo", 2));
  Callbacks callbacks;
  constexpr std::size_t kTasks = 5000;
  for (std::size_t i = 0; i < kTasks; ++i) {
    pool.submit("echo", "k" + std::to_string(i), {}, callbacks.recorder("k" + std::to_string(i)));
  }
  const std::vector<std::string> order = callbacks.wait_for(kTasks);
  ASSERT_EQ(order.size(), kTasks);
  for (std::size_t i = 0; i < kTasks; ++i) {
    const std::string key = "k" + std::to_string(i);
    EXPECT_EQ(callbacks.calls(key), 1) << key;
    EXPECT_EQ(callbacks.value(key).value_or("(no result)"), key);
  }
}

// A worker SIGKILLed while a caller drives the pool: its death is noticed (the supervisor
// thread's nap ends on the worker's exit), it is replaced, and every task the caller submitted
// is answered exactly once: its own echo, or WorkerCrashed for those on the killed worker.
TEST(PoolCallers, AWorkerKilledWhileACallerDrivesIsReplaced) {
  Pool pool(small_pool("echo", 2));
  auto warm = pool.submit("echo", "warm");
  ASSERT_EQ(value_of(warm), "warm");
  const int victim = pool.metrics().workers.at(0).pid;
  std::size_t echoes = 0, crashed = 0, polls = 0;
  bool killed = false;
  const bool replaced = drive_until(
      pool,
      [&] {
        if (!killed && ++polls >= 2000) killed = ::kill(victim, SIGKILL) == 0;
        if (!killed || (++polls & 255) != 0) return false;
        const WorkerMetrics worker = pool.metrics().workers.at(0);
        return worker.pid != victim && worker.state == WorkerMetrics::State::Ready;
      },
      kBound, echoes, crashed);
  ASSERT_TRUE(killed);
  EXPECT_TRUE(replaced) << "the killed worker was not replaced while a caller drove the pool";
  EXPECT_GE(pool.metrics().restarts, 1u);
  EXPECT_GT(echoes, crashed);
}

}  // namespace
}  // namespace procpool::test
