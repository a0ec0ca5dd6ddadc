// Tests of Pool::submit_chunked (many items per message, Python's chunksize): every item's
// outcome delivered exactly once at its own index, per-item errors, chunk-level failures fanned
// out to every item, chunks cut by max_payload, a crashed worker's chunk retried whole, cancel,
// metrics counted per item. Every wait is bounded (pool_test_support.hpp).

#include <gtest/gtest.h>

#include <chrono>       // durations
#include <cstddef>      // std::size_t
#include <memory>       // std::make_shared
#include <mutex>        // std::mutex
#include <optional>     // std::optional
#include <string>       // std::string
#include <string_view>  // std::string_view
#include <vector>       // std::vector

#include "pool_test_support.hpp"  // Watchdog, Callbacks, BlockedPool, bounded waits
#include "procpool/pool.hpp"
#include "test_workers.hpp"

namespace procpool::test {
namespace {

using namespace std::chrono_literals;

class PoolChunked : public ::testing::Test {
 protected:
  Watchdog watchdog_{50s};
};

// Every item's outcome, by index, with how often each index was called back.
struct ItemResults {
  explicit ItemResults(std::size_t n) : calls(n, 0), values(n), errors(n) {}

  auto callback() {
    return [this](std::size_t index, const TaskOutcome& outcome) {
      {
        std::lock_guard lock(mutex);
        if (index >= calls.size()) {
          ++out_of_range;
        } else {
          ++calls[index];
          if (outcome.ok()) {
            values[index].assign(outcome.value());
          } else {
            errors[index].emplace(*outcome.error());
          }
          if (outcome.worker_pid() != 0) ++with_pid;
        }
      }
      done.add();
    };
  }
  void wait() { done.wait_for(calls.size()); }

  std::mutex mutex;
  std::vector<int> calls;
  std::vector<std::string> values;
  std::vector<std::optional<TaskError>> errors;
  std::size_t out_of_range = 0;
  std::size_t with_pid = 0;
  Callbacks done;
};

std::vector<std::string_view> views_of(const std::vector<std::string>& inputs) {
  return {inputs.begin(), inputs.end()};
}

TEST_F(PoolChunked, EveryItemGetsItsOwnResultExactlyOnce) {
  Pool pool(small_pool("increment", 2));
  constexpr std::size_t kItems = 10'000;
  std::vector<std::string> inputs;
  for (std::size_t i = 0; i < kItems; ++i) inputs.push_back(std::to_string(3 * i + 1));
  ItemResults results(kItems);
  pool.submit_chunked("increment", views_of(inputs), 128, {}, results.callback());
  inputs.assign(kItems, "clobbered");  // the chunks were encoded before submit_chunked returned
  results.wait();
  pool.wait_idle();
  std::lock_guard lock(results.mutex);
  EXPECT_EQ(results.out_of_range, 0u);
  EXPECT_EQ(results.with_pid, kItems);  // each outcome names the worker that answered
  for (std::size_t i = 0; i < kItems; ++i) {
    ASSERT_EQ(results.calls[i], 1) << "index " << i;
    ASSERT_FALSE(results.errors[i]) << "index " << i << ": " << results.errors[i]->what();
    ASSERT_EQ(results.values[i], std::to_string(3 * i + 2)) << "index " << i;
  }
  const PoolMetrics metrics = pool.metrics();
  EXPECT_EQ(metrics.completed, kItems);  // counted per item, not per chunk
  EXPECT_EQ(metrics.failed, 0u);
}

TEST_F(PoolChunked, AutomaticChunkSizeAndEmptyInputWork) {
  Pool pool(small_pool("increment", 2));
  std::vector<std::string> inputs;
  for (std::size_t i = 0; i < 999; ++i) inputs.push_back(std::to_string(i));
  ItemResults results(inputs.size());
  pool.submit_chunked("increment", views_of(inputs), 0, {}, results.callback());
  results.wait();
  {
    std::lock_guard lock(results.mutex);
    for (std::size_t i = 0; i < inputs.size(); ++i) {
      ASSERT_EQ(results.calls[i], 1) << "index " << i;
      ASSERT_EQ(results.values[i], std::to_string(i + 1)) << "index " << i;
    }
  }
  bool called = false;
  pool.submit_chunked("increment", {}, 0, {},
                      [&](std::size_t, const TaskOutcome&) { called = true; });
  pool.wait_idle();
  EXPECT_FALSE(called);
}

TEST_F(PoolChunked, AnItemThatThrowsFailsAloneWithItsMessage) {
  Pool pool(small_pool("increment", 1));
  const std::vector<std::string> inputs = {"1", "not a number", "3", "", "5"};
  ItemResults results(inputs.size());
  pool.submit_chunked("increment", views_of(inputs), 100, {}, results.callback());
  results.wait();
  std::lock_guard lock(results.mutex);
  EXPECT_EQ(results.values[0], "2");
  EXPECT_EQ(results.values[2], "4");
  EXPECT_EQ(results.values[4], "6");
  for (std::size_t bad : {1u, 3u}) {
    ASSERT_TRUE(results.errors[bad]) << "index " << bad;
    EXPECT_EQ(results.errors[bad]->kind(), TaskError::Kind::HandlerError);
    EXPECT_NE(std::string(results.errors[bad]->what()).find("not an unsigned integer"),
              std::string::npos)
        << results.errors[bad]->what();
    EXPECT_GT(results.errors[bad]->worker_pid(), 0);
  }
  const PoolMetrics metrics = pool.metrics();
  EXPECT_EQ(metrics.completed, 3u);
  EXPECT_EQ(metrics.failed, 2u);
}

TEST_F(PoolChunked, UnknownHandlerFailsEveryItem) {
  Pool pool(small_pool("increment", 1));
  const std::vector<std::string> inputs = {"1", "2", "3"};
  ItemResults results(inputs.size());
  pool.submit_chunked("no-such-handler", views_of(inputs), 2, {}, results.callback());
  results.wait();
  std::lock_guard lock(results.mutex);
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    ASSERT_EQ(results.calls[i], 1);
    ASSERT_TRUE(results.errors[i]);
    EXPECT_EQ(results.errors[i]->kind(), TaskError::Kind::UnknownHandler);
  }
  EXPECT_EQ(pool.metrics().failed, inputs.size());
}

TEST_F(PoolChunked, ChunksAreCutByMaxPayloadAndAnOversizedItemFailsAlone) {
  PoolOptions options = small_pool("echo", 1);
  options.max_payload = 4096;
  Pool pool(options);
  std::vector<std::string> inputs;
  for (std::size_t i = 0; i < 40; ++i) inputs.push_back(std::string(900, char('a' + i % 26)));
  inputs[7] = std::string(5000, 'x');  // above max_payload on its own
  ItemResults results(inputs.size());
  // 100 per chunk would be 36 KiB: the pool cuts chunks at max_payload instead, 4 items each
  // (4 + 4 x 904 = 3,620 bytes in; the echoed answers are 4 + 4 x 908 = 3,636 bytes out).
  pool.submit_chunked("echo", views_of(inputs), 100, {}, results.callback());
  results.wait();
  std::lock_guard lock(results.mutex);
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    ASSERT_EQ(results.calls[i], 1) << "index " << i;
    if (i == 7) {
      ASSERT_TRUE(results.errors[i]);
      EXPECT_EQ(results.errors[i]->kind(), TaskError::Kind::PayloadTooLarge);
      EXPECT_EQ(results.errors[i]->worker_pid(), 0);  // refused before any worker saw it
      continue;
    }
    ASSERT_FALSE(results.errors[i]) << "index " << i << ": " << results.errors[i]->what();
    EXPECT_EQ(results.values[i], inputs[i]) << "index " << i;
  }
}

TEST_F(PoolChunked, AnswersAboveMaxPayloadFailTheChunkAsPayloadTooLarge) {
  PoolOptions options = small_pool("increment", 1);
  options.max_payload = 64;
  Pool pool(options);
  // Four 8-byte items fit max_payload on the way in (4 + 4 x 12 = 52 bytes), but each answer
  // also carries a u32 code: 4 + 4 x (8 + 8 digits) = 68 bytes > 64.
  const std::vector<std::string> inputs = {"10000000", "10000001", "10000002", "10000003"};
  ItemResults results(inputs.size());
  pool.submit_chunked("increment", views_of(inputs), 4, {}, results.callback());
  results.wait();
  std::lock_guard lock(results.mutex);
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    ASSERT_TRUE(results.errors[i]) << "index " << i;
    EXPECT_EQ(results.errors[i]->kind(), TaskError::Kind::PayloadTooLarge);
    EXPECT_NE(std::string(results.errors[i]->what()).find("chunk"), std::string::npos);
  }
}

TEST_F(PoolChunked, ACrashedWorkersChunkIsRetriedWholeAndDeliveredOnce) {
  Pool pool(small_pool("crashy", 2));
  std::vector<std::string> inputs;
  for (std::size_t i = 0; i < 300; ++i) inputs.push_back("item" + std::to_string(i));
  ItemResults results(inputs.size());
  TaskOptions options;
  options.max_attempts = 2;
  // Attempt 1 of every chunk SIGKILLs its worker at the chunk's first item; attempt 2 answers.
  pool.submit_chunked("crash_on_first_attempt", views_of(inputs), 50, options, results.callback());
  results.wait();
  std::lock_guard lock(results.mutex);
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    ASSERT_EQ(results.calls[i], 1) << "index " << i;
    ASSERT_FALSE(results.errors[i]) << "index " << i << ": " << results.errors[i]->what();
    EXPECT_EQ(results.values[i], inputs[i]);
  }
  const PoolMetrics metrics = pool.metrics();
  EXPECT_EQ(metrics.completed, inputs.size());
  EXPECT_GE(metrics.retried, 6u);  // every one of the 6 chunks went twice
}

TEST_F(PoolChunked, AChunkThatCrashesOnEveryAttemptFailsEveryItemAsWorkerCrashed) {
  Pool pool(small_pool("crashy", 1));
  const std::vector<std::string> inputs = {"a", "b", "c"};
  ItemResults results(inputs.size());
  TaskOptions options;
  options.max_attempts = 1;
  pool.submit_chunked("crash_on_first_attempt", views_of(inputs), 10, options, results.callback());
  results.wait();
  std::lock_guard lock(results.mutex);
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    ASSERT_EQ(results.calls[i], 1);
    ASSERT_TRUE(results.errors[i]);
    EXPECT_EQ(results.errors[i]->kind(), TaskError::Kind::WorkerCrashed);
    EXPECT_GT(results.errors[i]->worker_pid(), 0);
  }
}

TEST_F(PoolChunked, CancelFailsTheQueuedChunksItemsAsCancelled) {
  BlockedPool blocked;  // one worker, busy: the chunk stays queued
  const std::vector<std::string> inputs = {"x", "y", "z", "w"};
  ItemResults results(inputs.size());
  auto cancel = std::make_shared<CancelSource>();
  blocked.pool().submit_chunked("echo", views_of(inputs), 2, cancellable_by(cancel),
                                results.callback());
  cancel->cancel();
  results.wait();
  {
    std::lock_guard lock(results.mutex);
    for (std::size_t i = 0; i < inputs.size(); ++i) {
      ASSERT_EQ(results.calls[i], 1);
      ASSERT_TRUE(results.errors[i]);
      EXPECT_EQ(results.errors[i]->kind(), TaskError::Kind::Cancelled);
    }
  }
  blocked.release();
}

TEST_F(PoolChunked, ItemsSeeTheChunksAttempt) {
  Pool pool(small_pool("crashy", 1));
  const std::vector<std::string> inputs(5, "");
  ItemResults results(inputs.size());
  pool.submit_chunked("attempt", views_of(inputs), 5, {}, results.callback());
  results.wait();
  std::lock_guard lock(results.mutex);
  for (std::size_t i = 0; i < inputs.size(); ++i) EXPECT_EQ(results.values[i], "1");
}

}  // namespace
}  // namespace procpool::test
