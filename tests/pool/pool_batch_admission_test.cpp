// Pool::submit_batch's admission: the batch checks the pool's state and the handler once, each
// task's size and queue room on its own, so a task refused midway fails alone (with its own
// index) and the tasks around it still run. And its one shared callable: held by the tasks, it
// is destroyed once, after the last of them is answered or refused.
//
// Every wait is bounded (pool_test_support.hpp).

#include <gtest/gtest.h>

#include <algorithm>  // std::min
#include <atomic>     // the first callback
#include <chrono>     // durations
#include <memory>     // std::shared_ptr
#include <mutex>      // std::mutex
#include <optional>   // outcomes
#include <string>     // payloads
#include <vector>     // outcomes

#include "pool_fixtures.hpp"
#include "pool_test_support.hpp"  // Callbacks, BlockedPool, watchdog
#include "procpool/pool.hpp"
#include "test_workers.hpp"

namespace procpool::test {
namespace {

using namespace std::chrono_literals;

// Per index: how often it was called back, its value, or its error's kind.
struct BatchOutcomes {
  explicit BatchOutcomes(std::size_t n) : calls(n, 0), values(n), kinds(n) {}
  auto callback() {
    return [this](std::size_t index, const TaskOutcome& o) {
      {
        std::lock_guard lock(mutex);
        ++calls.at(index);
        if (o.ok()) {
          values[index] = std::string(o.value());
        } else {
          kinds[index] = o.error()->kind();
        }
      }
      done.add();
    };
  }
  std::mutex mutex;
  std::vector<int> calls;
  std::vector<std::optional<std::string>> values;
  std::vector<std::optional<TaskError::Kind>> kinds;
  Callbacks done;
};

TEST_F(PoolBasic, BatchTaskAboveMaxPayloadFailsAloneAndTheOthersRun) {
  PoolOptions options = small_pool("echo", 1);
  options.max_payload = 1000;
  Pool pool(options);
  const std::string big(1001, 'b');
  const std::vector<std::string_view> payloads{"a", big, "c", big, "e"};
  BatchOutcomes out(payloads.size());
  pool.submit_batch("echo", payloads, {}, out.callback());
  out.done.wait_for(payloads.size());
  for (std::size_t i = 0; i < payloads.size(); ++i) EXPECT_EQ(out.calls[i], 1) << i;
  EXPECT_EQ(out.values[0], "a");
  EXPECT_EQ(out.kinds[1], TaskError::Kind::PayloadTooLarge);
  EXPECT_EQ(out.values[2], "c");
  EXPECT_EQ(out.kinds[3], TaskError::Kind::PayloadTooLarge);
  EXPECT_EQ(out.values[4], "e");
}

TEST_F(PoolBasic, BatchThatFillsTheQueueRefusesTheRestWithQueueFullAtOnce) {
  PoolOptions options = small_pool("crashy", 1);
  options.max_queue = 3;
  options.cancel_grace = 5s;
  BlockedPool busy(options);
  Pool& pool = busy.pool();
  const std::vector<std::string_view> payloads{"p0", "p1", "p2", "p3", "p4"};
  BatchOutcomes out(payloads.size());
  pool.submit_batch("echo", payloads, {}, out.callback());
  {
    // The refusals are delivered before submit_batch returns; the queued ones wait.
    std::lock_guard lock(out.mutex);
    EXPECT_EQ(out.kinds[3], TaskError::Kind::QueueFull);
    EXPECT_EQ(out.kinds[4], TaskError::Kind::QueueFull);
    EXPECT_EQ(out.calls[0] + out.calls[1] + out.calls[2], 0);
  }
  EXPECT_EQ(pool.metrics().queued, 3u);
  busy.release();
  out.done.wait_for(payloads.size());
  for (std::size_t i = 0; i < payloads.size(); ++i) EXPECT_EQ(out.calls[i], 1) << i;
  EXPECT_EQ(out.values[0], "p0");
  EXPECT_EQ(out.values[1], "p1");
  EXPECT_EQ(out.values[2], "p2");
}

TEST_F(PoolBasic, BatchThatWaitsForRoomQueuesEveryTask) {
  PoolOptions options = small_pool("echo", 1);
  options.max_queue = 2;
  Pool pool(options);
  std::vector<std::string> inputs;
  for (int i = 0; i < 200; ++i) inputs.push_back(std::to_string(i));
  const std::vector<std::string_view> payloads(inputs.begin(), inputs.end());
  TaskOptions wait;
  wait.wait_if_full = true;
  BatchOutcomes out(payloads.size());
  pool.submit_batch("echo", payloads, wait, out.callback());
  out.done.wait_for(payloads.size());
  for (std::size_t i = 0; i < payloads.size(); ++i) {
    EXPECT_EQ(out.calls[i], 1) << i;
    EXPECT_EQ(out.values[i], inputs[i]) << i;
  }
}

TEST_F(PoolBasic, BatchForAnUnknownHandlerFailsEveryTask) {
  Pool pool(small_pool("echo", 1));
  const std::vector<std::string_view> payloads{"a", "b", "c"};
  BatchOutcomes out(payloads.size());
  pool.submit_batch("nope", payloads, {}, out.callback());
  out.done.wait_for(payloads.size());
  for (std::size_t i = 0; i < payloads.size(); ++i) {
    EXPECT_EQ(out.calls[i], 1) << i;
    EXPECT_EQ(out.kinds[i], TaskError::Kind::UnknownHandler) << i;
  }
}

TEST_F(PoolBasic, BatchCallableIsDestroyedOnceAfterItsLastTask) {
  Pool pool(small_pool("echo", 2));
  auto token = std::make_shared<int>(0);
  std::vector<std::string> inputs(300, "x");
  const std::vector<std::string_view> payloads(inputs.begin(), inputs.end());
  Callbacks done;
  pool.submit_batch("echo", payloads, {},
                    [&done, token](std::size_t, const TaskOutcome&) { done.add(); });
  done.wait_for(payloads.size());
  // wait_idle() returns once every delivery is over, completions destroyed included: the last
  // one (on whichever thread) dropped the callable, and only ours is left.
  pool.wait_idle();
  EXPECT_EQ(token.use_count(), 1);

  // Refused as a whole (shutting down): every task called back before submit_batch returns, and
  // the callable dropped by then.
  pool.shutdown();
  Callbacks refused;
  pool.submit_batch("echo", payloads, {}, [&refused, token](std::size_t, const TaskOutcome& o) {
    EXPECT_FALSE(o.ok());
    refused.add();
  });
  EXPECT_EQ(refused.total(), payloads.size());
  EXPECT_EQ(token.use_count(), 1);
}

// A long batch hands answers out while it is still being submitted (mu_ released between
// runs), so the pool may change under it: here the first callback shuts the pool down. Every
// task is called back once, and from the first one refused on, every later one is refused too
// (ShuttingDown); those before it ran. (How many run depends on timing; the order does not.)
TEST_F(PoolBasic, BatchCutShortByAShutdownMidwayRefusesTheRestInOrder) {
  Pool pool(small_pool("echo", 2));
  std::vector<std::string> inputs(20000, "x");
  const std::vector<std::string_view> payloads(inputs.begin(), inputs.end());
  BatchOutcomes out(payloads.size());
  std::atomic<bool> stopped{false};
  auto record = out.callback();
  pool.submit_batch("echo", payloads, {}, [&](std::size_t index, const TaskOutcome& o) {
    if (!stopped.exchange(true)) pool.shutdown();  // from a callback: returns at once
    record(index, o);
  });
  out.done.wait_for(payloads.size());
  std::size_t first_refused = payloads.size();
  for (std::size_t i = 0; i < payloads.size(); ++i) {
    ASSERT_EQ(out.calls[i], 1) << i;
    if (out.kinds[i]) {
      ASSERT_EQ(*out.kinds[i], TaskError::Kind::ShuttingDown) << i;
      first_refused = std::min(first_refused, i);
    } else {
      ASSERT_EQ(out.values[i].value_or(""), "x") << i;
      ASSERT_LT(i, first_refused) << "task " << i << " ran after task " << first_refused
                                  << " was refused";
    }
  }
}

}  // namespace
}  // namespace procpool::test
