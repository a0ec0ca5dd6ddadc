// procpool::Future (procpool/future.hpp), what Pool::submit returns: std::future's contract
// (timed waits say ready or timeout, get() once), plus ready() and then().
#include <gtest/gtest.h>

#include <atomic>              // the continuation's thread
#include <chrono>              // durations
#include <condition_variable>  // waiting for continuations
#include <future>              // std::future_status, std::future_error
#include <mutex>               // the continuation's results
#include <stdexcept>           // std::runtime_error
#include <string>              // std::string
#include <thread>              // std::this_thread::get_id
#include <vector>              // many futures

#include "pool_test_support.hpp"  // Watchdog, value_of, kBound, poll_until
#include "procpool/pool.hpp"
#include "test_workers.hpp"  // small_pool

namespace procpool::test {
namespace {

using namespace std::chrono_literals;

// A task that takes 50 ms (the "sleep" handler cannot answer sooner) is not ready after 1 ms,
// and is ready within the bound: wait_for says which, as std::future's does.
TEST(PoolFuture, TimedWaitsSayTimeoutThenReady) {
  const Watchdog watchdog(kBound * 2);
  Pool pool(small_pool("crashy", 1));
  Future<std::string> slow = pool.submit("sleep", "50");
  EXPECT_FALSE(slow.ready());
  EXPECT_EQ(slow.wait_for(1ms), std::future_status::timeout);
  EXPECT_EQ(slow.wait_until(std::chrono::system_clock::now() - 1h), std::future_status::timeout)
      << "a deadline in the past, on another clock";
  EXPECT_EQ(slow.wait_for(kBound), std::future_status::ready);
  EXPECT_TRUE(slow.ready());
  EXPECT_EQ(slow.wait_for(0ms), std::future_status::ready) << "ready stays ready";
  EXPECT_TRUE(slow.valid());
  EXPECT_EQ(slow.get(), "slept");
  EXPECT_FALSE(slow.valid()) << "get() consumes it, as std::future's does";
  try {
    slow.get();
    FAIL() << "a second get() returned";
  } catch (const std::future_error& e) {
    EXPECT_EQ(e.code(), std::future_errc::no_state);
  }
}

// The harness of a user who bounds every wait: with wait_for, none of the tasks is lost.
TEST(PoolFuture, ManyTimedWaitsAllSeeTheirResults) {
  const Watchdog watchdog(kBound * 2);
  Pool pool(small_pool("echo", 2));
  std::vector<Future<std::string>> futures;
  constexpr int kTasks = 5000;
  futures.reserve(kTasks);
  for (int i = 0; i < kTasks; ++i) futures.push_back(pool.submit("echo", std::to_string(i)));
  int ready = 0;
  for (int i = 0; i < kTasks; ++i) {
    if (futures[i].wait_for(kBound) != std::future_status::ready) break;
    ++ready;
    EXPECT_EQ(futures[i].get(), std::to_string(i));
  }
  EXPECT_EQ(ready, kTasks);
}

TEST(PoolFuture, GetThrowsTheTasksError) {
  const Watchdog watchdog(kBound * 2);
  Pool pool(small_pool("crashy", 1));
  Future<std::string> thrown = pool.submit("throw", "bad input");
  ASSERT_EQ(thrown.wait_for(kBound), std::future_status::ready);
  try {
    thrown.get();
    FAIL() << "no error";
  } catch (const TaskError& e) {
    EXPECT_EQ(e.kind(), TaskError::Kind::HandlerError);
    EXPECT_NE(std::string(e.what()).find("bad input"), std::string::npos) << e.what();
  }
}

// then() on a pending future: called once, with the future ready, by the thread that delivers
// the outcome; on one that is ready already: at once, in the caller's thread.
TEST(PoolFuture, ThenRunsOnceWithTheReadyFuture) {
  const Watchdog watchdog(kBound * 2);
  Pool pool(small_pool("crashy", 1));
  std::mutex mutex;
  std::condition_variable called;
  std::vector<std::string> results;
  std::vector<std::thread::id> threads;
  auto record = [&](Future<std::string> done) {
    const bool was_ready = done.ready();
    std::string value;
    try {
      value = done.get();
    } catch (const TaskError& e) {
      value = "error: " + std::string(to_string(e.kind()));
    }
    std::lock_guard lock(mutex);
    results.push_back((was_ready ? "" : "NOT READY ") + value);
    threads.push_back(std::this_thread::get_id());
    called.notify_all();
  };
  Future<std::string> pending = pool.submit("sleep", "50");
  pending.then(record);
  EXPECT_FALSE(pending.valid()) << "then() consumes it";
  Future<std::string> failing = pool.submit("throw", "x");
  failing.then(record);
  {
    std::unique_lock lock(mutex);
    ASSERT_TRUE(called.wait_for(lock, kBound, [&] { return results.size() == 2; }));
  }
  Future<std::string> done = pool.submit("echo", "now");
  ASSERT_EQ(done.wait_for(kBound), std::future_status::ready);
  done.then(record);  // ready: runs here and now
  std::lock_guard lock(mutex);
  ASSERT_EQ(results.size(), 3u);
  EXPECT_EQ(results[0], "slept");
  EXPECT_EQ(results[1], "error: HandlerError");
  EXPECT_EQ(results[2], "now");
  EXPECT_EQ(threads[2], std::this_thread::get_id());
}

// A continuation that throws where the pool delivers it is caught and counted, like a
// completion callback; the pool goes on.
TEST(PoolFuture, ThrowingContinuationIsCountedAndThePoolGoesOn) {
  const Watchdog watchdog(kBound * 2);
  Pool pool(small_pool("crashy", 1));
  std::atomic<bool> ran{false};
  Future<std::string> pending = pool.submit("sleep", "50");
  pending.then([&](Future<std::string>) {
    ran = true;
    throw std::runtime_error("continuation bug");
  });
  ASSERT_TRUE(poll_until([&] { return pool.metrics().callback_errors == 1; }))
      << pool.metrics().callback_errors;
  EXPECT_TRUE(ran);
  auto after = pool.submit("echo", "still serving");
  EXPECT_EQ(value_of(after), "still serving");
}

TEST(PoolFuture, DefaultConstructedHasNoState) {
  Future<std::string> none;
  EXPECT_FALSE(none.valid());
  EXPECT_FALSE(none.ready());
  EXPECT_THROW(none.wait(), std::future_error);
  EXPECT_THROW((void)none.wait_for(1ms), std::future_error);
}

}  // namespace
}  // namespace procpool::test
