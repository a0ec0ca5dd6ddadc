// Tests of procpool::Pool's everyday behaviour with real worker processes (the example workers):
// results under concurrency, the three ways to submit (future, callback, batch), wait_idle(),
// worker data, every TaskError kind that has a non-crash cause, payload sizes both ways, option
// validation, a worker that exits before READY, and metrics.
//
// Every wait is bounded: the pool's futures are std::launch::deferred (wait_for() reports
// `deferred`), so get() runs on a std::async thread that is waited for with a bound, and
// callbacks are awaited on a condition variable with a bound. A test that overruns its bound
// aborts the process with a message instead of hanging (CTest runs each TEST in its own
// process). A per-test watchdog bounds everything else (pool destructors included). Nothing
// here sleeps to wait for an event; sleeping inside a worker handler ("sleep") is part of a
// scenario.

#include <gtest/gtest.h>
#include <sys/stat.h>  // chmod
#include <unistd.h>    // getpid, gettid

#include <algorithm>       // std::find
#include <array>           // a large callback capture
#include <atomic>          // std::atomic
#include <boost/json.hpp>  // boost::json::parse (to_json() must be valid JSON)
#include <chrono>          // durations
#include <cstring>         // std::memcpy
#include <filesystem>      // std::filesystem
#include <fstream>         // std::ifstream, std::ofstream
#include <functional>      // std::function
#include <future>          // std::async
#include <memory>          // std::make_shared, std::make_unique
#include <mutex>           // std::mutex
#include <optional>        // std::optional
#include <random>          // std::mt19937_64
#include <set>             // std::set
#include <string>          // std::string
#include <thread>          // std::this_thread
#include <vector>          // std::vector

#include "pool_test_support.hpp"  // bounded waits, Callbacks, BlockedPool, /proc readings, watchdog
#include "procpool/error.hpp"
#include "procpool/pool.hpp"
#include "test_workers.hpp"

namespace procpool::test {
namespace {

using namespace std::chrono_literals;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

// The pool's message if constructing it throws procpool::Error; nullopt if it did not throw.
std::optional<std::string> construction_error(PoolOptions options) {
  return bounded("Pool construction",
                 [options = std::move(options)]() -> std::optional<std::string> {
                   try {
                     Pool pool(options);
                     return std::nullopt;
                   } catch (const TaskError& e) {
                     return std::string("unexpected TaskError: ") + e.what();
                   } catch (const Error& e) {
                     return std::string(e.what());
                   }
                 });
}

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

// --- Process hygiene after a failed construction (docs/design-rules.md §22) ---

// Snapshot of fds, /dev/shm and children; check() says what changed.
class Hygiene {
 public:
  Hygiene() : fds_(directory_entries("/proc/self/fd")), shm_(directory_entries("/dev/shm")) {}
  void check() const {
    // The directory iterator's own fd differs between listings; compare counts of the rest.
    std::set<std::string> fds = directory_entries("/proc/self/fd");
    EXPECT_LE(fds.size(), fds_.size()) << "file descriptors leaked by the failed pool";
    EXPECT_EQ(directory_entries("/dev/shm"), shm_) << "/dev/shm changed";
    EXPECT_EQ(child_processes(), std::vector<std::string>{}) << "children left behind";
  }

 private:
  std::set<std::string> fds_;
  std::set<std::string> shm_;
};

class PoolBasic : public ::testing::Test {
 protected:
  Watchdog watchdog_{50s};
};

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
        std::vector<std::pair<std::uint64_t, std::future<std::string>>> window;
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
  std::vector<std::future<std::string>> echoes, lengths;
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

// ---------------------------------------------------------------------------------------------
// Task errors with a real cause

TEST_F(PoolBasic, HandlerThatThrowsFailsWithHandlerErrorCarryingItsMessageAndPid) {
  Pool pool(small_pool("crashy", 1));
  auto pid_future = pool.submit("pid", "");
  const int pid = std::stoi(value_of(pid_future));
  auto f = pool.submit("throw", "disk on fire at sector 7");
  const auto error = error_of(f);
  ASSERT_TRUE(error);
  EXPECT_EQ(error->kind(), TaskError::Kind::HandlerError) << error->what();
  EXPECT_EQ(error->worker_pid(), pid);
  EXPECT_NE(std::string(error->what()).find("disk on fire at sector 7"), std::string::npos)
      << error->what();
  // The worker survives its handler's exception.
  auto after = pool.submit("pid", "");
  EXPECT_EQ(std::stoi(value_of(after)), pid);
  EXPECT_EQ(pool.metrics().restarts, 0u);
}

TEST_F(PoolBasic, HandlerErrorReachesTheCallbackToo) {
  Pool pool(small_pool("increment", 1));
  Callbacks done;
  std::string message;
  TaskError::Kind kind = TaskError::Kind::Timeout;
  int pid = 0;
  pool.submit("increment", "not a number", {}, [&](const TaskOutcome& o) {
    if (!o.ok()) {
      message = o.error()->what();
      kind = o.error()->kind();
      pid = o.error()->worker_pid();
    }
    done.add();
  });
  done.wait_for(1);
  EXPECT_EQ(kind, TaskError::Kind::HandlerError);
  EXPECT_GT(pid, 0);
  EXPECT_NE(message.find("not an unsigned integer"), std::string::npos) << message;
}

TEST_F(PoolBasic, UnknownHandlerNameFailsWithUnknownHandlerNamingIt) {
  Pool pool(small_pool("echo", 1));
  auto f = pool.submit("nope", "x");
  const auto error = error_of(f);
  ASSERT_TRUE(error);
  EXPECT_EQ(error->kind(), TaskError::Kind::UnknownHandler) << error->what();
  EXPECT_EQ(error->worker_pid(), 0) << "no worker is involved in rejecting a name";
  EXPECT_NE(std::string(error->what()).find("nope"), std::string::npos) << error->what();
  const std::vector<std::string> names = pool.handlers();
  EXPECT_NE(std::find(names.begin(), names.end(), "echo"), names.end());
  EXPECT_EQ(std::find(names.begin(), names.end(), "nope"), names.end());
}

TEST_F(PoolBasic, PayloadAboveMaxPayloadIsRejectedBeforeAnyWorkerSeesIt) {
  PoolOptions options = small_pool("echo", 1);
  options.max_payload = 1000;
  Pool pool(options);
  auto ok = pool.submit("echo", std::string(1000, 'a'));
  EXPECT_EQ(value_of(ok), std::string(1000, 'a'));
  auto f = pool.submit("echo", std::string(1001, 'a'));
  const auto error = error_of(f);
  ASSERT_TRUE(error);
  EXPECT_EQ(error->kind(), TaskError::Kind::PayloadTooLarge) << error->what();
  EXPECT_EQ(error->worker_pid(), 0);
  const std::string what = error->what();
  EXPECT_NE(what.find("1001"), std::string::npos) << what;
  EXPECT_NE(what.find("1000"), std::string::npos) << what;
}

TEST_F(PoolBasic, ResultAboveMaxPayloadFailsWithPayloadTooLargeFromTheWorker) {
  PoolOptions options = small_pool("echo", 1);
  options.max_payload = 1000;
  options.worker_data = std::string(2000, 'd');  // "data" answers it: a 2000-byte result
  Pool pool(options);
  auto warm_up = pool.submit("length", "");
  EXPECT_EQ(value_of(warm_up), "0");
  auto f = pool.submit("data", "");
  const auto error = error_of(f);
  ASSERT_TRUE(error);
  EXPECT_EQ(error->kind(), TaskError::Kind::PayloadTooLarge) << error->what();
  ASSERT_EQ(pool.metrics().workers.size(), 1u);
  EXPECT_EQ(error->worker_pid(), pool.metrics().workers[0].pid);
  EXPECT_GT(error->worker_pid(), 0);
  EXPECT_NE(std::string(error->what()).find("2000"), std::string::npos) << error->what();
  // The worker is still fine.
  auto after = pool.submit("echo", "still here");
  EXPECT_EQ(value_of(after), "still here");
}

// Options for a BlockedPool whose queue holds at most `max_queue` tasks (its blocker's worker
// gets a long cancel_grace).
PoolOptions busy_pool(std::size_t max_queue) {
  PoolOptions options = small_pool("crashy", 1);
  options.max_queue = max_queue;
  options.cancel_grace = 5s;
  return options;
}

TEST_F(PoolBasic, SubmitThatMayNotWaitFailsWithQueueFullWhenQueueIsAtMaxQueue) {
  BlockedPool busy(busy_pool(2));
  Pool& pool = busy.pool();
  auto first = pool.submit("echo", "first");
  auto second = pool.submit("echo", "second");
  ASSERT_EQ(pool.metrics().queued, 2u);
  auto third = pool.submit("echo", "third");  // wait_if_full = false by default
  const auto error = error_of(third);
  ASSERT_TRUE(error);
  EXPECT_EQ(error->kind(), TaskError::Kind::QueueFull) << error->what();
  EXPECT_EQ(error->worker_pid(), 0);
  EXPECT_NE(std::string(error->what()).find("max_queue 2"), std::string::npos) << error->what();
  // The callback path says the same, synchronously.
  std::optional<TaskError::Kind> callback_kind;
  pool.submit("echo", "fourth", {}, [&](const TaskOutcome& o) {
    if (!o.ok()) callback_kind = o.error()->kind();
  });
  EXPECT_EQ(callback_kind, TaskError::Kind::QueueFull);

  busy.release();
  EXPECT_EQ(value_of(first), "first");
  EXPECT_EQ(value_of(second), "second");
}

// Reads the scheduler state letter of one of our threads (R running, S sleeping, ...).
char thread_state(pid_t tid) {
  std::ifstream stat("/proc/self/task/" + std::to_string(tid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return '?';
  const std::size_t close = line.rfind(')');
  return close == std::string::npos || close + 2 >= line.size() ? '?' : line[close + 2];
}

TEST_F(PoolBasic, SubmitThatMayWaitBlocksWhileQueueIsFullAndProceedsWhenThereIsRoom) {
  BlockedPool busy(busy_pool(1));
  Pool& pool = busy.pool();
  auto queued = pool.submit("echo", "queued");
  ASSERT_EQ(pool.metrics().queued, 1u);

  std::atomic<bool> room_made{false};
  std::atomic<pid_t> submitter_tid{0};
  std::atomic<bool> returned{false};
  std::atomic<bool> returned_before_room{false};
  auto submitter = std::async(std::launch::async, [&] {
    submitter_tid.store(::gettid());
    TaskOptions options;
    options.wait_if_full = true;
    auto future = pool.submit("echo", "waited", options);
    returned_before_room.store(!room_made.load());
    returned.store(true);
    return future.get();
  });
  // Bounded poll until the submitter is asleep (blocked in submit, nothing else can block it).
  const auto deadline = Clock::now() + 10s;
  while (submitter_tid.load() == 0 || thread_state(submitter_tid.load()) != 'S') {
    ASSERT_LT(Clock::now(), deadline) << "the submitting thread never blocked";
    ASSERT_FALSE(returned.load()) << "submit(wait_if_full) returned while the queue was full";
    std::this_thread::yield();
  }
  EXPECT_FALSE(returned.load()) << "submit(wait_if_full) returned while the queue was full";
  EXPECT_EQ(pool.metrics().queued, 1u);

  room_made.store(true);
  busy.release();  // the worker takes "queued": room for "waited"
  if (submitter.wait_for(kBound) != std::future_status::ready) overran("submitter", kBound);
  EXPECT_EQ(submitter.get(), "waited");
  EXPECT_FALSE(returned_before_room.load())
      << "submit(wait_if_full) returned before the queue had room";
  EXPECT_EQ(value_of(queued), "queued");
}

TEST_F(PoolBasic, SubmitterBlockedOnAFullQueueIsReleasedWithShuttingDownByShutdown) {
  BlockedPool busy(busy_pool(1));
  Pool& pool = busy.pool();
  auto queued = pool.submit("echo", "queued");
  std::atomic<pid_t> submitter_tid{0};
  auto submitter = std::async(std::launch::async, [&] {
    submitter_tid.store(::gettid());
    TaskOptions options;
    options.wait_if_full = true;
    return pool.submit("echo", "waited", options);
  });
  const auto deadline = Clock::now() + 10s;
  while (submitter_tid.load() == 0 || thread_state(submitter_tid.load()) != 'S') {
    ASSERT_LT(Clock::now(), deadline) << "the submitting thread never blocked";
    std::this_thread::yield();
  }
  // shutdown() waits for the blocker and "queued"; it must not leave the submitter blocked.
  auto stopper = std::async(std::launch::async, [&pool] { pool.shutdown(); });
  if (submitter.wait_for(10s) == std::future_status::ready) {
    std::future<std::string> waited = submitter.get();
    const auto error = error_of(waited);
    ASSERT_TRUE(error);
    EXPECT_EQ(error->kind(), TaskError::Kind::ShuttingDown) << error->what();
    EXPECT_EQ(error->worker_pid(), 0);
  } else {
    ADD_FAILURE() << "shutdown() left a submitter blocked on the full queue";
  }
  busy.release();
  EXPECT_EQ(value_of(queued), "queued") << "a task queued before shutdown() still runs";
  if (stopper.wait_for(kBound) != std::future_status::ready) overran("shutdown()", kBound);
  if (submitter.valid()) {
    if (submitter.wait_for(kBound) != std::future_status::ready) overran("submitter", kBound);
  }
}

TEST_F(PoolBasic, TaskStillQueuedWhenShutdownGraceRunsOutFailsWithShuttingDown) {
  PoolOptions options = small_pool("crashy", 1);
  options.pipeline_depth = 1;
  options.shutdown_grace = 200ms;
  Pool pool(options);
  auto running = pool.submit("sleep", "1000");  // outlasts the grace
  auto queued = pool.submit("echo", "never runs");
  ASSERT_EQ(pool.metrics().queued, 1u);
  bounded("shutdown()", [&pool] { pool.shutdown(); });
  const auto error = error_of(queued);
  ASSERT_TRUE(error);
  EXPECT_EQ(error->kind(), TaskError::Kind::ShuttingDown) << error->what();
  EXPECT_EQ(error->worker_pid(), 0);
  EXPECT_NE(std::string(error->what()).find("shut down"), std::string::npos) << error->what();
  // The running task was let finish (the worker completes its current task before it stops).
  EXPECT_EQ(value_of(running), "slept");
}

TEST_F(PoolBasic, CancelRemovesAQueuedTaskAndStopsARunningOneWithoutKillingItsWorker) {
  PoolOptions options = small_pool("crashy", 1);
  options.pipeline_depth = 1;
  Pool pool(options);
  auto pid_future = pool.submit("pid", "");
  const int pid = std::stoi(value_of(pid_future));

  auto cancel_running = std::make_shared<CancelSource>();
  auto cancel_queued = std::make_shared<CancelSource>();
  auto running = pool.submit("sleep", "30000", cancellable_by(cancel_running));
  auto queued = pool.submit("echo", "cancelled while queued", cancellable_by(cancel_queued));
  auto bystander = pool.submit("echo", "bystander");
  ASSERT_EQ(pool.metrics().queued, 2u);

  cancel_queued->cancel();
  EXPECT_TRUE(cancel_queued->cancelled());
  const auto queued_error = error_of(queued);
  ASSERT_TRUE(queued_error);
  EXPECT_EQ(queued_error->kind(), TaskError::Kind::Cancelled) << queued_error->what();
  EXPECT_EQ(queued_error->worker_pid(), 0) << "a queued task involves no worker";
  EXPECT_EQ(pool.metrics().queued, 1u);

  cancel_running->cancel();
  const auto running_error = error_of(running);
  ASSERT_TRUE(running_error);
  EXPECT_EQ(running_error->kind(), TaskError::Kind::Cancelled) << running_error->what();
  EXPECT_EQ(running_error->worker_pid(), pid);

  EXPECT_EQ(value_of(bystander), "bystander");
  auto after = pool.submit("pid", "");
  EXPECT_EQ(std::stoi(value_of(after)), pid) << "the handler polls cancelled(): no kill needed";
  EXPECT_EQ(pool.metrics().restarts, 0u);

  // A source cancelled before submission cancels at once.
  auto pre_cancelled = std::make_shared<CancelSource>();
  pre_cancelled->cancel();
  auto never = pool.submit("echo", "never", cancellable_by(pre_cancelled));
  const auto never_error = error_of(never);
  ASSERT_TRUE(never_error);
  EXPECT_EQ(never_error->kind(), TaskError::Kind::Cancelled) << never_error->what();
}

TEST_F(PoolBasic, SubmitAfterShutdownFailsWithShuttingDown) {
  Pool pool(small_pool("echo", 1));
  auto before = pool.submit("echo", "before");
  EXPECT_EQ(value_of(before), "before");
  bounded("shutdown()", [&pool] { pool.shutdown(); });
  bounded("second shutdown()", [&pool] { pool.shutdown(); });  // idempotent

  auto f = pool.submit("echo", "after");
  const auto error = error_of(f);
  ASSERT_TRUE(error);
  EXPECT_EQ(error->kind(), TaskError::Kind::ShuttingDown) << error->what();
  EXPECT_EQ(error->worker_pid(), 0);
  EXPECT_NE(std::string(error->what()).find("shutting down"), std::string::npos) << error->what();

  std::vector<std::string_view> payloads = {"a", "b", "c"};
  std::vector<int> shutting_down(payloads.size(), 0);
  pool.submit_batch("echo", payloads, {}, [&](std::size_t index, const TaskOutcome& o) {
    if (!o.ok() && o.error()->kind() == TaskError::Kind::ShuttingDown) ++shutting_down[index];
  });
  EXPECT_EQ(shutting_down, std::vector<int>(payloads.size(), 1));
  EXPECT_EQ(pool.metrics().state, PoolMetrics::State::Stopped);
  EXPECT_TRUE(pool.metrics().workers.empty());
}

// ---------------------------------------------------------------------------------------------
// Options and start-up

TEST_F(PoolBasic, BadOptionsThrowErrorSayingWhatIsWrong) {
  const Hygiene hygiene;
  struct Case {
    const char* name;
    std::function<void(PoolOptions&)> change;
    std::vector<std::string> message_parts;
  };
  const std::vector<Case> cases = {
      {"min above max",
       [](PoolOptions& o) {
         o.min_workers = 3;
         o.max_workers = 2;
       },
       {"max_workers (2)", "min_workers (3)"}},
      {"pipeline_depth above the maximum",
       [](PoolOptions& o) { o.pipeline_depth = 65537; },
       {"pipeline_depth above 65536"}},
      {"empty executable", [](PoolOptions& o) { o.executable.clear(); }, {"executable", "empty"}},
      {"ring_capacity not a power of two",
       [](PoolOptions& o) { o.ring_capacity = 300000; },
       {"ring_capacity", "power of two"}},
      {"max_attempts 0", [](PoolOptions& o) { o.max_attempts = 0; }, {"max_attempts"}},
      {"max_rss above max_rss_hard",
       [](PoolOptions& o) {
         o.max_rss = 2 << 20;
         o.max_rss_hard = 1 << 20;
       },
       {"max_rss (2097152)", "max_rss_hard (1048576)"}},
      {"max_payload 0", [](PoolOptions& o) { o.max_payload = 0; }, {"max_payload"}},
  };
  for (const Case& c : cases) {
    PoolOptions options = small_pool("echo", 1);
    c.change(options);
    const auto message = construction_error(options);
    ASSERT_TRUE(message) << c.name << ": the pool accepted the options";
    for (const std::string& part : c.message_parts) {
      EXPECT_NE(message->find(part), std::string::npos) << c.name << ": " << *message;
    }
  }
  hygiene.check();
}

TEST_F(PoolBasic, MissingExecutableThrowsErrorNamingThePath) {
  const Hygiene hygiene;
  PoolOptions options = small_pool("echo", 1);
  options.executable = "/nonexistent/procpool-test/no-such-worker";
  const auto message = construction_error(options);
  ASSERT_TRUE(message);
  EXPECT_NE(message->find(options.executable), std::string::npos) << *message;
  EXPECT_NE(message->find("No such file"), std::string::npos) << *message;
  hygiene.check();
}

TEST_F(PoolBasic, NonExecutableFileThrowsErrorNamingThePath) {
  const std::filesystem::path file = std::filesystem::temp_directory_path() /
                                     ("procpool-not-executable-" + std::to_string(::getpid()));
  {
    std::ofstream out(file);
    out << "#!/bin/sh\nexit 0\n";
  }
  ASSERT_EQ(::chmod(file.c_str(), 0644), 0);
  const Hygiene hygiene;
  PoolOptions options = small_pool("echo", 1);
  options.executable = file.string();
  const auto message = construction_error(options);
  std::filesystem::remove(file);
  ASSERT_TRUE(message);
  EXPECT_NE(message->find(options.executable), std::string::npos) << *message;
  EXPECT_NE(message->find("ermission denied"), std::string::npos) << *message;
  hygiene.check();
}

TEST_F(PoolBasic, WorkerExitingBeforeReadyMakesConstructorThrowWithExitCodeAndStderr) {
  const Hygiene hygiene;
  PoolOptions options = small_pool("crashy", 1);
  options.args = {"--exit-before-ready", "3"};
  options.forward_stderr = false;  // the tail is kept for the report either way
  const auto started = Clock::now();
  const auto message = construction_error(options);
  ASSERT_TRUE(message);
  EXPECT_NE(message->find("exit code 3"), std::string::npos) << *message;
  EXPECT_NE(message->find("crashy: exiting before ready as asked"), std::string::npos) << *message;
  EXPECT_LT(Clock::now() - started, 10s) << "giving up took too long";
  hygiene.check();
}

// ---------------------------------------------------------------------------------------------
// Metrics

TEST_F(PoolBasic, MetricsCountWhatWasSubmittedPerPoolAndPerWorker) {
  Pool pool(small_pool("increment", 2));
  constexpr std::uint64_t kGood = 100, kBad = 7;
  std::vector<std::future<std::string>> good, bad;
  for (std::uint64_t i = 0; i < kGood; ++i)
    good.push_back(pool.submit("increment", std::to_string(i)));
  for (std::uint64_t i = 0; i < kBad; ++i)
    bad.push_back(pool.submit("increment", "x" + std::to_string(i)));
  for (std::uint64_t i = 0; i < kGood; ++i) EXPECT_EQ(value_of(good[i]), std::to_string(i + 1));
  for (auto& f : bad) {
    const auto error = error_of(f);
    ASSERT_TRUE(error);
    EXPECT_EQ(error->kind(), TaskError::Kind::HandlerError);
  }

  const PoolMetrics m = pool.metrics();
  EXPECT_EQ(m.state, PoolMetrics::State::Running);
  EXPECT_EQ(m.completed, kGood);
  EXPECT_EQ(m.failed, kBad);
  EXPECT_EQ(m.queued, 0u);
  EXPECT_EQ(m.running, 0u);
  EXPECT_EQ(m.retried, 0u);
  EXPECT_EQ(m.restarts, 0u);
  EXPECT_EQ(m.run_time.count, kGood + kBad);
  EXPECT_EQ(m.queue_wait.count, kGood + kBad);
  EXPECT_GT(m.run_time.max_us, 0.0);
  EXPECT_LE(m.run_time.p50_us, m.run_time.p99_us);
  ASSERT_EQ(m.workers.size(), 2u);
  std::uint64_t done = 0, failed = 0;
  std::set<int> pids;
  for (const WorkerMetrics& w : m.workers) {
    EXPECT_GT(w.pid, 0);
    EXPECT_EQ(w.state, WorkerMetrics::State::Ready);
    EXPECT_GT(w.rss_bytes, 0u);
    EXPECT_EQ(w.inflight, 0u);
    EXPECT_EQ(w.restarts, 0u);
    EXPECT_GT(w.started_unix_s, 0.0);
    pids.insert(w.pid);
    done += w.tasks_done;
    failed += w.tasks_failed;
  }
  EXPECT_EQ(pids.size(), 2u);
  EXPECT_EQ(done, kGood);
  EXPECT_EQ(failed, kBad);

  const std::string json = m.to_json();
  boost::json::value parsed;
  ASSERT_NO_THROW(parsed = boost::json::parse(json)) << json;
  ASSERT_TRUE(parsed.is_object()) << json;
  const boost::json::object& root = parsed.as_object();
  EXPECT_EQ(root.at("completed").to_number<std::uint64_t>(), kGood);
  EXPECT_EQ(root.at("failed").to_number<std::uint64_t>(), kBad);
  EXPECT_EQ(root.at("state").as_string(), "running");
  ASSERT_TRUE(root.at("workers").is_array()) << json;
  const boost::json::array& workers = root.at("workers").as_array();
  ASSERT_EQ(workers.size(), 2u);
  for (std::size_t i = 0; i < workers.size(); ++i) {
    EXPECT_EQ(workers[i].as_object().at("pid").to_number<int>(), m.workers[i].pid);
    EXPECT_EQ(workers[i].as_object().at("state").as_string(), "ready");
    EXPECT_EQ(workers[i].as_object().at("tasks_done").to_number<std::uint64_t>(),
              m.workers[i].tasks_done);
  }
  EXPECT_TRUE(root.at("run_time").as_object().contains("p99_us")) << json;
}

// PoolMetrics::failed is documented as "resolved with an error (any kind)": tasks refused at
// submission (unknown handler, payload too large, queue full) are resolved with an error too, so
// completed + failed accounts for every task submitted.
TEST_F(PoolBasic, MetricsCountTasksRefusedAtSubmissionAsFailed) {
  PoolOptions options = small_pool("echo", 1);
  options.max_payload = 100;
  Pool pool(options);
  auto ok = pool.submit("echo", "fine");
  auto unknown = pool.submit("nope", "");
  auto too_large = pool.submit("echo", std::string(101, 'x'));
  EXPECT_EQ(value_of(ok), "fine");
  ASSERT_TRUE(error_of(unknown));
  ASSERT_TRUE(error_of(too_large));
  const PoolMetrics m = pool.metrics();
  EXPECT_EQ(m.completed, 1u);
  EXPECT_EQ(m.failed, 2u) << "completed + failed should account for all 3 tasks submitted";
}

}  // namespace
}  // namespace procpool::test
