// Tests of procpool::Pool's everyday behaviour with real worker processes (the example workers):
// results under concurrency, the three ways to submit (future, callback, batch), wait_idle(),
// worker data, and payload sizes both ways.
//
// Every wait is bounded: a future is waited for with wait_for(bound) before get(), and
// callbacks are awaited on a condition variable with a bound. A test that overruns its bound
// aborts the process with a message instead of hanging (CTest runs each TEST in its own
// process). A per-test watchdog bounds everything else (pool destructors included). Nothing
// here sleeps to wait for an event; sleeping inside a worker handler ("sleep") is part of a
// scenario.

#include <gtest/gtest.h>

#include <array>    // a large callback capture
#include <atomic>   // std::atomic
#include <chrono>   // durations
#include <cstring>  // std::memcpy
#include <future>   // std::async
#include <memory>   // std::make_shared, std::make_unique
#include <mutex>    // std::mutex
#include <random>   // std::mt19937_64
#include <string>   // std::string
#include <thread>   // std::this_thread
#include <vector>   // std::vector

#include "pool_fixtures.hpp"
#include "pool_test_support.hpp"  // bounded waits, Callbacks, BlockedPool, /proc readings, watchdog
#include "procpool/pool.hpp"
#include "test_workers.hpp"

namespace procpool::test {
namespace {

using namespace std::chrono_literals;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

// Deterministic pseudo-random bytes (all 256 values, NULs included).
std::string random_bytes(std::size_t size, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string out(size, '\0');
  std::size_t i = 0;
  for (; i + 8 <= size; i += 8) {
    const std::uint64_t word = rng();
    std::memcpy(out.data() + i, &word, 8);
  }
  for (; i < size; ++i) out[i] = static_cast<char>(rng() & 0xFF);
  return out;
}

// Where two byte strings first differ (or the shorter length), for a readable failure.
std::string first_difference(const std::string& expected, const std::string& actual) {
  if (expected.size() != actual.size()) {
    return "size " + std::to_string(actual.size()) + ", expected " +
           std::to_string(expected.size());
  }
  for (std::size_t i = 0; i < expected.size(); ++i) {
    if (expected[i] != actual[i]) return "first difference at byte " + std::to_string(i);
  }
  return "identical";
}

// ---------------------------------------------------------------------------------------------
// Results under concurrency

TEST_F(PoolBasic, ConcurrentFutureSubmittersEachGetTheirOwnIncrementedValue) {
  Pool pool(small_pool("increment", 2));
  constexpr int kThreads = 4;
  constexpr std::uint64_t kPerThread = 500;
  std::vector<std::future<std::size_t>> submitters;
  for (int t = 0; t < kThreads; ++t) {
    submitters.push_back(std::async(std::launch::async, [&pool, t] {
      std::size_t wrong = 0;
      const std::uint64_t base = static_cast<std::uint64_t>(t) * 1'000'000'000ULL;
      // Keep several in flight per thread: submit a window, then collect it.
      for (std::uint64_t start = 0; start < kPerThread; start += 25) {
        std::vector<std::pair<std::uint64_t, procpool::Future<std::string>>> window;
        for (std::uint64_t i = start; i < start + 25 && i < kPerThread; ++i) {
          window.emplace_back(base + i, pool.submit("increment", std::to_string(base + i)));
        }
        for (auto& [x, future] : window) {
          const std::string result = future.get();
          if (result != std::to_string(x + 1)) {
            if (++wrong <= 5) ADD_FAILURE() << "increment(" << x << ") returned " << result;
          }
        }
      }
      return wrong;
    }));
  }
  for (auto& submitter : submitters) {
    if (submitter.wait_for(kBound) != std::future_status::ready) overran("submitter", kBound);
    EXPECT_EQ(submitter.get(), 0u);
  }
  const PoolMetrics m = pool.metrics();
  EXPECT_EQ(m.completed, kThreads * kPerThread);
  EXPECT_EQ(m.failed, 0u);
}

TEST_F(PoolBasic, CallbackFastPathDeliversEveryResultOnce) {
  Pool pool(small_pool("increment", 2));
  constexpr std::size_t kTasks = 2000;
  struct State {
    std::mutex mutex;
    std::vector<std::string> results = std::vector<std::string>(kTasks);
    std::vector<int> calls = std::vector<int>(kTasks, 0);
    std::vector<std::string> errors;
    Callbacks done;
  } state;
  for (std::size_t i = 0; i < kTasks; ++i) {
    // A small capture (fits Completion's inline buffer: the allocation-free path).
    pool.submit("increment", std::to_string(i * 3), {}, [s = &state, i](const TaskOutcome& o) {
      {
        std::lock_guard lock(s->mutex);
        ++s->calls[i];
        if (o.ok()) {
          s->results[i].assign(o.value());
        } else {
          s->errors.emplace_back(o.error()->what());
        }
      }
      s->done.add();
    });
  }
  state.done.wait_for(kTasks);
  std::lock_guard lock(state.mutex);
  EXPECT_EQ(state.errors, std::vector<std::string>{});
  for (std::size_t i = 0; i < kTasks; ++i) {
    EXPECT_EQ(state.calls[i], 1) << "task " << i;
    EXPECT_EQ(state.results[i], std::to_string(i * 3 + 1)) << "task " << i;
  }
}

TEST_F(PoolBasic, CallbackLargerThanInlineBufferAndMoveOnlyCapturesWork) {
  Pool pool(small_pool("increment", 1));
  Callbacks done;
  std::string seen_big, seen_move_only;
  std::array<char, 200> big{};  // forces the heap path of detail::Completion
  big[199] = 'z';
  pool.submit("increment", "41", {}, [&done, &seen_big, big](const TaskOutcome& o) {
    seen_big = std::string(o.value()) + big[199];
    done.add();
  });
  auto owned = std::make_unique<std::string>("move-only:");
  pool.submit("increment", "99", {},
              [&done, &seen_move_only, owned = std::move(owned)](const TaskOutcome& o) {
                seen_move_only = *owned + std::string(o.value());
                done.add();
              });
  done.wait_for(2);
  EXPECT_EQ(seen_big, "42z");
  EXPECT_EQ(seen_move_only, "move-only:100");
}

TEST_F(PoolBasic, SubmitBatchCallsBackEachIndexExactlyOnceWithItsOwnResult) {
  Pool pool(small_pool("increment", 2));
  constexpr std::size_t kTasks = 1000;  // more than one internal dispatch chunk (64)
  std::vector<std::string> inputs;
  for (std::size_t i = 0; i < kTasks; ++i) inputs.push_back(std::to_string(i * 7 + 5));
  std::vector<std::string_view> payloads(inputs.begin(), inputs.end());

  std::mutex mutex;
  std::vector<int> calls(kTasks, 0);
  std::vector<std::string> results(kTasks);
  std::size_t out_of_range = 0, errors = 0;
  Callbacks done;
  pool.submit_batch("increment", payloads, {}, [&](std::size_t index, const TaskOutcome& o) {
    {
      std::lock_guard lock(mutex);
      if (index >= kTasks) {
        ++out_of_range;
      } else {
        ++calls[index];
        if (o.ok()) {
          results[index].assign(o.value());
        } else {
          ++errors;
        }
      }
    }
    done.add();
  });
  inputs.assign(kTasks, std::string("clobbered"));  // the batch copied its payloads already
  done.wait_for(kTasks);
  pool.wait_idle();  // nothing left to run: returns at once
  std::lock_guard lock(mutex);
  EXPECT_EQ(out_of_range, 0u);
  EXPECT_EQ(errors, 0u);
  for (std::size_t i = 0; i < kTasks; ++i) {
    EXPECT_EQ(calls[i], 1) << "index " << i;
    EXPECT_EQ(results[i], std::to_string(i * 7 + 6)) << "index " << i;
  }
  EXPECT_EQ(done.total(), kTasks);
}

TEST_F(PoolBasic, WaitIdleReturnsAfterEveryQueuedAndRunningTaskResolved) {
  PoolOptions options = small_pool("increment", 2);
  options.pipeline_depth = 4;  // most of the tasks wait in the pool's queue
  Pool pool(options);
  constexpr std::size_t kTasks = 3000;
  Callbacks done;
  for (std::size_t i = 0; i < kTasks; ++i) {
    pool.submit("increment", std::to_string(i), {}, [&done](const TaskOutcome&) { done.add(); });
  }
  bounded("wait_idle()", [&pool] { pool.wait_idle(); });
  EXPECT_EQ(done.total(), kTasks) << "wait_idle() returned before every callback ran";
  const PoolMetrics m = pool.metrics();
  EXPECT_EQ(m.queued, 0u);
  EXPECT_EQ(m.running, 0u);
  EXPECT_EQ(m.completed, kTasks);
}

// A completion callback that takes a while (it is user code) must have returned by the time
// wait_idle() does: otherwise "wait_idle(), then read what the callbacks stored" races.
TEST_F(PoolBasic, WaitIdleReturnsOnlyAfterASlowCompletionCallbackReturned) {
  Pool pool(small_pool("crashy", 1));
  std::atomic<bool> callback_returned{false};
  // The task takes 100 ms, far longer than wait_idle()'s spin, so wait_idle() is asleep when the
  // supervisor thread resolves the task and runs the callback.
  pool.submit("sleep", "100", {}, [&callback_returned](const TaskOutcome& o) {
    EXPECT_TRUE(o.ok());
    std::this_thread::sleep_for(300ms);  // slow user code, part of the scenario
    callback_returned.store(true);
  });
  bounded("wait_idle()", [&pool] { pool.wait_idle(); });
  EXPECT_TRUE(callback_returned.load())
      << "wait_idle() returned while a completion callback was still running";
}

// ---------------------------------------------------------------------------------------------
// Worker data and payloads

TEST_F(PoolBasic, WorkerDataReachesEveryWorkerByteForByte) {
  PoolOptions options = small_pool("echo", 2);
  static constexpr char kPrefix[] = "config\0with NUL and \xff bytes";
  options.worker_data = std::string(kPrefix, sizeof kPrefix - 1) + random_bytes(4000, 7);
  Pool pool(options);
  // One batch: dispatch alternates between the two idle workers (least loaded first).
  constexpr std::size_t kTasks = 10;
  std::vector<std::string_view> payloads(kTasks, std::string_view());
  std::mutex mutex;
  std::vector<std::string> results(kTasks);
  Callbacks done;
  pool.submit_batch("data", payloads, {}, [&](std::size_t index, const TaskOutcome& o) {
    {
      std::lock_guard lock(mutex);
      results[index] = o.ok() ? std::string(o.value()) : "error: " + std::string(o.error()->what());
    }
    done.add();
  });
  done.wait_for(kTasks);
  for (std::size_t i = 0; i < kTasks; ++i) {
    EXPECT_TRUE(results[i] == options.worker_data)
        << "task " << i << ": " << first_difference(options.worker_data, results[i]);
  }
  const PoolMetrics m = pool.metrics();
  ASSERT_EQ(m.workers.size(), 2u);
  for (const WorkerMetrics& w : m.workers) {
    EXPECT_GT(w.tasks_done, 0u) << "worker " << w.slot << " answered no \"data\" task";
  }
}

TEST_F(PoolBasic, PayloadsOfEverySizeRoundTripByteForByte) {
  Pool pool(small_pool("echo", 2));
  // 131040 bytes is the largest task that fits one record of the default 256 KiB ring (half the
  // ring, less the record and frame headers); 131041 is the smallest that is fragmented.
  const std::vector<std::size_t> sizes = {0,      1,      1000,        131000,          131040,
                                          131041, 262151, 1024 * 1024, 10 * 1024 * 1024};
  std::vector<std::string> inputs;
  for (std::size_t i = 0; i < sizes.size(); ++i) inputs.push_back(random_bytes(sizes[i], i + 1));
  // All in flight at once, both directions fragmenting concurrently.
  std::vector<procpool::Future<std::string>> echoes, lengths;
  for (const std::string& input : inputs) {
    echoes.push_back(pool.submit("echo", input));
    lengths.push_back(pool.submit("length", input));
  }
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const std::string echoed = value_of(echoes[i]);
    EXPECT_TRUE(echoed == inputs[i])
        << "size " << sizes[i] << ": " << first_difference(inputs[i], echoed);
    EXPECT_EQ(value_of(lengths[i]), std::to_string(sizes[i])) << "size " << sizes[i];
  }
}

TEST_F(PoolBasic, PayloadOfExactlyMaxPayloadRoundTripsAndOneMoreByteIsRejected) {
  PoolOptions options = small_pool("echo", 1);
  options.max_payload = 3 * 1024 * 1024;
  Pool pool(options);
  const std::string input = random_bytes(options.max_payload, 99);
  auto echoed = pool.submit("echo", input);
  const std::string result = value_of(echoed);
  EXPECT_TRUE(result == input) << first_difference(input, result);

  auto too_big = pool.submit("echo", input + "x");
  const auto error = error_of(too_big);
  ASSERT_TRUE(error);
  EXPECT_EQ(error->kind(), TaskError::Kind::PayloadTooLarge) << error->what();
  EXPECT_EQ(error->worker_pid(), 0);
  EXPECT_NE(std::string(error->what()).find(std::to_string(options.max_payload + 1)),
            std::string::npos)
      << error->what();
}

}  // namespace
}  // namespace procpool::test
