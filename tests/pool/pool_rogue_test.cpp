// Rogue-worker tests of procpool::Pool (issue 4): a worker that scribbles random bytes over its
// result ring, its control block or its header, lies about record lengths and ring positions,
// sends malformed frames or endless fragments, or floods wake-ups. The supervisor must detect it,
// kill it with a typed error carrying its pid and saying what was detected, replace it, and keep
// serving the other worker throughout; it never crashes, hangs or reads out of bounds (the asan
// preset runs this suite under AddressSanitizer and UndefinedBehaviorSanitizer).
//
// The rogue is tests/pool/rogue_worker.cpp, two of them per pool. Each scenario submits
// one misbehaving task with echo traffic around it, then checks:
//   - the misbehaving task resolves (bounded) with WorkerCrashed whose worker_pid() is one of the
//     pool's two workers and whose what() says "protocol violation: <what>" and carries the
//     rogue's own stderr line "rogue <pid>: ..." (so the pid is the process that misbehaved);
//   - every echo task submitted while the rogue misbehaved came back right, exactly once;
//   - the rogue is gone (killed and reaped) and its slot is refilled, the other worker is the same
//     process as before, and both serve echo tasks afterwards.
// The random misbehaviours run over many seeds (the seed is the input; a failing seed
// reproduces). Every wait is bounded (pool_test_support.hpp), and a watchdog bounds each test.

#include <gtest/gtest.h>
#include <sys/resource.h>  // getrusage (the supervisor's CPU time during a flood)

#include <algorithm>  // std::find
#include <chrono>     // durations
#include <cstdint>    // std::uint64_t
#include <mutex>      // the events seen
#include <optional>   // the fixture's pool
#include <string>     // std::string
#include <tuple>      // the cases
#include <utility>    // std::pair
#include <vector>     // std::vector

#include "pool_test_support.hpp"  // bounded waits, Callbacks, poll_until, child_processes, Watchdog
#include "procpool/pool.hpp"      // Pool, PoolOptions, TaskError

namespace procpool::test {
namespace {

using namespace std::chrono_literals;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;
using Kind = TaskError::Kind;

constexpr milliseconds kTestBound = 110s;  // the whole test, destructors included
constexpr int kSeeds = 50;                 // seeds per random misbehaviour
constexpr int kEchoes = 40;                // echo tasks around each misbehaving task

// Two rogue workers, with the default restart policy: a rogue killed with its task on board is
// that task's problem (charged an attempt) and is replaced at once, however often it happens; one
// killed idle (its task already answered) is a broken start and backs off a little, well within
// the waits here. Small rings and max_payload keep the fragment bomb short.
PoolOptions rogue_pool() {
  PoolOptions options;
  options.executable = PROCPOOL_ROGUE_WORKER;
  options.min_workers = 2;
  options.max_workers = 2;
  options.ring_capacity = 64 * 1024;
  options.max_payload = 256 * 1024;
  return options;
}

bool contains(const std::vector<int>& pids, int pid) {
  return std::find(pids.begin(), pids.end(), pid) != pids.end();
}

// The pids of the READY workers.
std::vector<int> ready_pids(const Pool& pool) {
  std::vector<int> pids;
  for (const WorkerMetrics& w : pool.metrics().workers) {
    if (w.state == WorkerMetrics::State::Ready && w.pid > 0) pids.push_back(w.pid);
  }
  return pids;
}

// Waits (bounded) until both workers are READY; returns their pids.
std::vector<int> both_ready(const Pool& pool) {
  std::vector<int> pids;
  EXPECT_TRUE(poll_until([&] {
    pids = ready_pids(pool);
    return pids.size() == 2;
  })) << "the pool did not get back to two READY workers";
  return pids;
}

// Submits `count` echo tasks, each echoing its own key; returns the keys.
std::vector<std::string> submit_echoes(Pool& pool, Callbacks& callbacks, const std::string& tag,
                                       int count) {
  std::vector<std::string> keys;
  for (int i = 0; i < count; ++i) {
    keys.push_back(tag + "#" + std::to_string(i));
    pool.submit("echo", keys.back(), {}, callbacks.recorder(keys.back()));
  }
  return keys;
}

// Waits (bounded) for the echo tasks and checks each came back as itself, exactly once.
void expect_echoes(Callbacks& callbacks, const std::vector<std::string>& keys) {
  callbacks.wait_for(keys.size());
  for (const std::string& key : keys) {
    EXPECT_EQ(callbacks.calls(key), 1) << key;
    const auto error = callbacks.error(key);
    EXPECT_EQ(callbacks.value(key).value_or("<none>"), key)
        << (error ? std::string(to_string(error->kind())) + ": " + error->what() : "");
  }
}

// One misbehaving task with echo traffic around it: its outcome and the workers before it.
struct RogueRun {
  Outcome outcome;
  std::vector<int> before;  // the two READY workers' pids when it was submitted
  std::uint64_t restarts_before = 0;
};

RogueRun run_rogue(Pool& pool, const std::string& handler, const std::string& input) {
  RogueRun run;
  run.before = both_ready(pool);
  run.restarts_before = pool.metrics().restarts;
  auto rogue = pool.submit(handler, input);
  Callbacks during;
  const auto keys = submit_echoes(pool, during, handler + " " + input, kEchoes);
  run.outcome = outcome_of(rogue);
  expect_echoes(during, keys);
  return run;
}

// After a rogue `victim` was killed: its slot is refilled, the other worker is untouched, the
// victim is reaped, and both workers serve.
void expect_replaced(Pool& pool, const RogueRun& run, int victim, const std::string& tag) {
  ASSERT_TRUE(contains(run.before, victim))
      << "pid " << victim << " is not one of the pool's workers";
  const int survivor = run.before[0] == victim ? run.before[1] : run.before[0];
  std::vector<int> after;
  ASSERT_TRUE(poll_until([&] {
    after = ready_pids(pool);
    return pool.metrics().restarts > run.restarts_before && after.size() == 2 &&
           !contains(after, victim);
  })) << tag
      << ": the rogue " << victim << " was not replaced";
  EXPECT_TRUE(contains(after, survivor))
      << tag << ": the other worker " << survivor << " did not survive the rogue";
  for (const std::string& child : child_processes()) {
    EXPECT_NE(child.substr(0, child.find(' ')), std::to_string(victim))
        << tag << ": the rogue was not reaped";
  }
  Callbacks afterwards;
  expect_echoes(afterwards, submit_echoes(pool, afterwards, tag + " after", kEchoes));
  EXPECT_EQ(pool.metrics().state, PoolMetrics::State::Running);
}

// The misbehaving task failed WorkerCrashed naming the rogue, saying "protocol violation" and
// every one of `mentions`, and the rogue was replaced.
void expect_rogue_killed(Pool& pool, const std::string& handler, const std::string& input,
                         const std::vector<std::string>& mentions = {}) {
  const std::string tag = handler + " " + input;
  const RogueRun run = run_rogue(pool, handler, input);
  ASSERT_TRUE(run.outcome.error) << tag << ": " << run.outcome.describe();
  const TaskError& error = *run.outcome.error;
  const std::string what = error.what();
  EXPECT_EQ(error.kind(), Kind::WorkerCrashed) << tag << ": " << what;
  const int victim = error.worker_pid();
  std::vector<std::string> expected = {"was killed: protocol violation",
                                       "(pid " + std::to_string(victim) + ")",
                                       "rogue " + std::to_string(victim) + ": " + handler};
  expected.insert(expected.end(), mentions.begin(), mentions.end());
  for (const std::string& mention : expected) {
    EXPECT_NE(what.find(mention), std::string::npos)
        << tag << ": \"" << mention << "\" not in: " << what;
  }
  expect_replaced(pool, run, victim, tag);
}

class PoolRogue : public ::testing::Test {
 protected:
  void TearDown() override {
    if (pool_) {
      EXPECT_EQ(pool_->metrics().state, PoolMetrics::State::Running);
      bounded("Pool shutdown", [this] { pool_->shutdown(); });
      pool_.reset();
      EXPECT_TRUE(child_processes().empty()) << ::testing::PrintToString(child_processes());
    }
  }

  Pool& pool() {
    if (!pool_) pool_.emplace(rogue_pool());
    return *pool_;
  }

  Watchdog watchdog_{kTestBound};
  std::optional<Pool> pool_;
};

// ---------------------------------------------------------------------------------------------
// Scribbles and lies about the result ring

TEST_F(PoolRogue, ScribbledResultRingKillsOnlyTheRogue) {
  for (int seed = 1; seed <= kSeeds; ++seed) {
    expect_rogue_killed(pool(), "scribble_ring", std::to_string(seed));
    if (HasFatalFailure()) return;
  }
}

TEST_F(PoolRogue, LyingRecordLengthKillsOnlyTheRogue) {
  for (int seed = 1; seed <= kSeeds; ++seed) {
    expect_rogue_killed(pool(), "lie_length", std::to_string(seed));
    if (HasFatalFailure()) return;
  }
}

TEST_F(PoolRogue, PositionsMovingBackwardsOrBeyondKillOnlyTheRogue) {
  for (int seed = 1; seed <= kSeeds; ++seed) {
    expect_rogue_killed(pool(), "move_back", std::to_string(seed), {"ring position"});
    if (HasFatalFailure()) return;
  }
}

// ---------------------------------------------------------------------------------------------
// The control block and the segment header

// Random control-block fields, the heartbeat random, 0 or in the far future, the running task's
// id random or 0: the heartbeat is a lie the supervisor catches, and the misbehaving task is
// charged even though the control block no longer names it (otherwise it would be dispatched
// again for free to the next worker, and the next, forever).
TEST_F(PoolRogue, ScribbledControlBlockKillsOnlyTheRogue) {
  for (int seed = 1; seed <= kSeeds; ++seed) {
    expect_rogue_killed(pool(), "scribble_control", std::to_string(seed),
                        {"heartbeat", "running a \"scribble_control\" task (attempt 1 of 1)"});
    if (HasFatalFailure()) return;
  }
}

// The whole segment random (header, control block, both rings), again every
// millisecond: whatever the supervisor detects first, the worker's own report of its running
// task cannot be trusted, so the oldest task on board, the misbehaving one, is charged an
// attempt for each worker it wrecks. It fails as a poison task after max_attempts instead of
// going from worker to worker for free, and get() returns.
TEST_F(PoolRogue, TaskThatScribblesTheWholeSegmentFailsAfterItsAttempts) {
  constexpr unsigned kAttempts = 3;
  for (int seed = 1; seed <= 10; ++seed) {
    const std::string tag = "scribble_all " + std::to_string(seed);
    both_ready(pool());
    const std::uint64_t restarts = pool().metrics().restarts;
    TaskOptions options;
    options.max_attempts = kAttempts;
    auto rogue = pool().submit("scribble_all", std::to_string(seed), options);
    Callbacks during;
    const auto keys = submit_echoes(pool(), during, tag, kEchoes);
    const Outcome outcome = outcome_of(rogue);
    ASSERT_TRUE(outcome.error) << tag << ": " << outcome.describe();
    const std::string what = outcome.error->what();
    EXPECT_EQ(outcome.error->kind(), Kind::WorkerCrashed) << tag << ": " << what;
    EXPECT_NE(what.find("task failed on all " + std::to_string(kAttempts) + " attempts (poison)"),
              std::string::npos)
        << tag << ": " << what;
    expect_echoes(during, keys);
    EXPECT_GE(pool().metrics().restarts, restarts + kAttempts) << tag;
    EXPECT_EQ(both_ready(pool()).size(), 2u) << tag;
    Callbacks after;
    expect_echoes(after, submit_echoes(pool(), after, tag + " after", kEchoes));
    EXPECT_EQ(pool().metrics().state, PoolMetrics::State::Running) << tag;
    if (HasFatalFailure()) return;
  }
}

// The supervisor never reads the segment header back (it keeps its own layout): scribbling it
// harms nobody, so the rogue keeps serving. (The handler keeps its name from when the segment
// had an arena too.)
TEST_F(PoolRogue, ScribbledArenaAndHeaderAreNeverReadBack) {
  const std::uint64_t restarts = pool().metrics().restarts;
  for (int seed = 1; seed <= 20; ++seed) {
    const RogueRun run = run_rogue(pool(), "scribble_arena", std::to_string(seed));
    ASSERT_TRUE(run.outcome.value) << run.outcome.describe();
    ASSERT_EQ(run.outcome.value->rfind("scribbled ", 0), 0u) << *run.outcome.value;
    EXPECT_TRUE(contains(run.before, std::stoi(run.outcome.value->substr(10))));
    Callbacks after;
    expect_echoes(after, submit_echoes(pool(), after, "arena after", kEchoes));
  }
  EXPECT_EQ(pool().metrics().restarts, restarts);
  EXPECT_EQ(both_ready(pool()).size(), 2u);
}

// ---------------------------------------------------------------------------------------------
// Bad frames in well-formed records

TEST_F(PoolRogue, BadFramesKillOnlyTheRogue) {
  const std::vector<std::pair<std::string, std::string>> kinds = {
      {"version", "unknown wire version"},
      {"type", "unknown frame type"},
      {"flags", "unknown frame flags"},
      {"length", "frame length disagrees with its record"},
      {"short", "frame shorter than its header"},
      {"stranger", "which is not on board"},
      {"progress_stranger", "progress for task"},
      {"worker_type", "unexpected frame type from worker"},
      {"ready", "unexpected or malformed READY"},
      {"interleave", "result fragments interleaved"},
      {"chunk_flag", "chunked answer for a task that is not a chunk"},
  };
  for (const auto& [kind, detected] : kinds) {
    for (int seed = 1; seed <= 4; ++seed) {
      expect_rogue_killed(pool(), "bad_frame", kind + " " + std::to_string(seed), {detected});
      if (HasFatalFailure()) return;
    }
  }
}

// A malformed error payload, plain or detailed, fails the task at once (not through the crash
// report), with the same kind and pid as any protocol violation; the worker is killed all the
// same. Seeds 1 to 13 draw every malformation bad_frame's error_body has.
TEST_F(PoolRogue, MalformedErrorFrameFailsTheTaskAndKillsTheRogue) {
  for (int seed = 1; seed <= 13; ++seed) {
    const std::string input = "error_body " + std::to_string(seed);
    const RogueRun run = run_rogue(pool(), "bad_frame", input);
    ASSERT_TRUE(run.outcome.error) << input << ": " << run.outcome.describe();
    const TaskError& error = *run.outcome.error;
    const std::string what = error.what();
    EXPECT_EQ(error.kind(), Kind::WorkerCrashed) << what;
    EXPECT_NE(what.find("protocol violation: malformed error frame from worker"), std::string::npos)
        << what;
    EXPECT_NE(what.find("(pid " + std::to_string(error.worker_pid()) + ")"), std::string::npos)
        << what;
    expect_replaced(pool(), run, error.worker_pid(), input);
    if (HasFatalFailure()) return;
  }
}

// A malformed chunked answer (wrong count, unknown code, a length past the end, bytes left over)
// is checked before any item is delivered: the chunk's items fail WorkerCrashed naming the
// rogue, and the rogue is killed and replaced.
TEST_F(PoolRogue, MalformedChunkAnswerFailsItsItemsAndKillsTheRogue) {
  for (int seed = 1; seed <= 10; ++seed) {
    const std::string input = "chunk_body " + std::to_string(seed);
    RogueRun run;
    run.before = both_ready(pool());
    run.restarts_before = pool().metrics().restarts;
    Callbacks item;
    const std::string_view payloads[] = {input};
    pool().submit_chunked("bad_frame", payloads, 1, {},
                          [&](std::size_t, const TaskOutcome& o) { item.record(input, o); });
    item.wait_for(1);
    const auto error = item.error(input);
    ASSERT_TRUE(error) << input << ": answered " << item.value(input).value_or("<nothing>");
    const std::string what = error->what();
    EXPECT_EQ(error->kind(), Kind::WorkerCrashed) << what;
    EXPECT_NE(what.find("protocol violation: malformed chunk answer from worker"),
              std::string::npos)
        << what;
    expect_replaced(pool(), run, error->worker_pid(), input);
    if (HasFatalFailure()) return;
  }
}

// An answer sent twice: the first one stands (the task is answered exactly once), the second is
// a protocol violation and the worker is killed.
TEST_F(PoolRogue, DuplicateAnswerKeepsTheFirstAndKillsTheRogue) {
  for (int seed = 1; seed <= 6; ++seed) {
    const std::string input = "duplicate " + std::to_string(seed);
    const RogueRun run = run_rogue(pool(), "bad_frame", input);
    ASSERT_TRUE(run.outcome.value) << input << ": " << run.outcome.describe();
    ASSERT_EQ(run.outcome.value->rfind("first ", 0), 0u) << *run.outcome.value;
    expect_replaced(pool(), run, std::stoi(run.outcome.value->substr(6)), input);
    if (HasFatalFailure()) return;
  }
}

// Result fragments without end: cut off just above max_payload (256 KiB here), not buffered on.
TEST_F(PoolRogue, FragmentBombIsCutOffAboveMaxPayload) {
  for (int seed = 1; seed <= 5; ++seed) {
    expect_rogue_killed(pool(), "fragment_bomb", std::to_string(seed),
                        {"result above max_payload"});
    if (HasFatalFailure()) return;
  }
}

// The WorkerExited event of a rogue names the rule it broke (PoolEvent::violation; the message
// has the details), one case per kind of violation; workers stopped by the shutdown broke none.
TEST(PoolRogueEvents, TheExitEventNamesTheRuleTheRogueBroke) {
  Watchdog watchdog{kTestBound};
  std::mutex mu;
  std::vector<PoolEvent> exits;
  PoolOptions options = rogue_pool();
  options.on_event = [&](const PoolEvent& event) {
    if (event.kind != PoolEvent::Kind::WorkerExited) return;
    std::lock_guard lock(mu);
    exits.push_back(event);
  };
  auto exit_of = [&](int pid) -> std::optional<PoolEvent> {
    std::lock_guard lock(mu);
    for (const PoolEvent& event : exits) {
      if (event.pid == pid) return event;
    }
    return std::nullopt;
  };
  const std::vector<std::tuple<std::string, std::string, ProtocolViolation>> cases = {
      {"bad_frame", "type 1", ProtocolViolation::BadFrame},
      {"bad_frame", "ready 1", ProtocolViolation::BadFrame},
      {"bad_frame", "stranger 1", ProtocolViolation::BadAnswer},
      {"bad_frame", "chunk_flag 1", ProtocolViolation::BadAnswer},
      {"move_back", "1", ProtocolViolation::RingCorruption},
      {"fragment_bomb", "1", ProtocolViolation::OversizedResult},
      {"scribble_control", "1", ProtocolViolation::ControlBlockLie},
      {"flood", "doorbell 3000", ProtocolViolation::DoorbellFlood},
  };
  std::vector<int> victims;
  {
    Pool pool(options);
    for (const auto& [handler, input, expected] : cases) {
      const std::string tag = handler + " " + input;
      const RogueRun run = run_rogue(pool, handler, input);
      ASSERT_TRUE(run.outcome.error) << tag << ": " << run.outcome.describe();
      const int victim = run.outcome.error->worker_pid();
      victims.push_back(victim);
      std::optional<PoolEvent> exit;
      ASSERT_TRUE(poll_until([&] { return (exit = exit_of(victim)).has_value(); }))
          << tag << ": no WorkerExited event for the rogue " << victim;
      EXPECT_EQ(exit->violation, expected)
          << tag << ": " << to_string(exit->violation) << " (" << exit->message << ")";
      both_ready(pool);
    }
    bounded("Pool shutdown", [&] { pool.shutdown(); });
  }
  std::lock_guard lock(mu);
  for (const PoolEvent& event : exits) {
    if (std::find(victims.begin(), victims.end(), event.pid) != victims.end()) continue;
    EXPECT_EQ(event.violation, ProtocolViolation::None) << event.message;
  }
}

// ---------------------------------------------------------------------------------------------
// Wake-up floods (docs/design-rules.md §18)

double process_cpu_seconds() {
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
  };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

// A worker writing its doorbell in a tight loop (3 s if left alone) rings far more often than
// its ring traffic allows: it is killed within moments, so the supervisor (this process) does not
// spend the flood awake. Without the limit, every ring woke the supervisor thread: a full core.
TEST_F(PoolRogue, DoorbellFloodIsKilledAndCostsTheSupervisorLittleCpu) {
  for (int round = 1; round <= 5; ++round) {
    const double cpu_before = process_cpu_seconds();
    const auto start = Clock::now();
    expect_rogue_killed(pool(), "flood", "doorbell 3000", {"doorbell flood", "rings for"});
    if (HasFatalFailure()) return;
    const double wall = std::chrono::duration<double>(Clock::now() - start).count();
    const double cpu = process_cpu_seconds() - cpu_before;
    EXPECT_LT(wall, 2.5) << "round " << round << ": the flood was not cut short";
    EXPECT_LT(cpu, 0.5 * wall + 0.3)
        << "round " << round << ": " << cpu << " s CPU in " << wall << " s";
  }
}

// FUTEX_WAKE on every ring futex in a tight loop: the supervisor never sleeps on a futex
// (docs/design-rules.md §7), so it is not woken at all; the worker answers when its flood is over.
TEST_F(PoolRogue, FutexFloodDoesNotWakeTheSupervisor) {
  const std::uint64_t restarts = pool().metrics().restarts;
  both_ready(pool());
  const double cpu_before = process_cpu_seconds();
  const auto start = Clock::now();
  const RogueRun run = run_rogue(pool(), "flood", "futex 1500");
  const double wall = std::chrono::duration<double>(Clock::now() - start).count();
  const double cpu = process_cpu_seconds() - cpu_before;
  ASSERT_TRUE(run.outcome.value) << run.outcome.describe();
  EXPECT_EQ(run.outcome.value->rfind("flooded ", 0), 0u) << *run.outcome.value;
  EXPECT_GE(wall, 1.5);
  EXPECT_LT(cpu, 0.25 * wall + 0.3) << cpu << " s CPU in " << wall << " s";
  EXPECT_EQ(pool().metrics().restarts, restarts);
}

}  // namespace
}  // namespace procpool::test
