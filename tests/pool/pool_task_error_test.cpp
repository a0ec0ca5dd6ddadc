// Tests of procpool::Pool's everyday behaviour with real worker processes (the example workers):
// every TaskError kind that has a non-crash cause (a handler that throws, an unknown handler,
// payloads too large either way, a full queue, shutdown, cancellation).
//
// Every wait is bounded (pool_test_support.hpp): futures and callbacks with a bound, and a
// per-test watchdog for the rest (pool destructors included). Nothing here sleeps to wait for an
// event; sleeping inside a worker handler ("sleep") is part of a scenario.

#include <gtest/gtest.h>
#include <unistd.h>  // getpid, gettid

#include <algorithm>  // std::find
#include <atomic>     // std::atomic
#include <chrono>     // durations
#include <cstdint>    // std::int64_t
#include <fstream>    // std::ifstream, std::ofstream
#include <future>     // std::async
#include <memory>     // std::make_shared, std::make_unique
#include <optional>   // std::optional
#include <string>     // std::string
#include <thread>     // std::this_thread
#include <vector>     // std::vector

#include "pool_fixtures.hpp"
#include "pool_test_support.hpp"  // bounded waits, Callbacks, BlockedPool, /proc readings, watchdog
#include "procpool/pool.hpp"
#include "test_workers.hpp"

namespace procpool::test {
namespace {

using namespace std::chrono_literals;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

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

// The error names the type of what the handler threw, and a procpool::TaskFailure's code, for
// a task alone and for an item of a chunk.
TEST_F(PoolBasic, HandlerErrorCarriesTheExceptionsTypeAndItsCode) {
  Pool pool(small_pool("crashy", 1));
  auto invalid = pool.submit("throw_invalid_argument", "bad number");
  auto failure = pool.submit("throw_failure", "-42 no such account");
  auto plain = pool.submit("throw", "boom");
  auto integer = pool.submit("throw_int", "7");
  struct Expected {
    Future<std::string>* future;
    const char* type;
    std::optional<std::int64_t> code;
    const char* message;
  };
  const Expected cases[] = {
      {&invalid, "std::invalid_argument", std::nullopt, "bad number"},
      {&failure, "procpool::TaskFailure", -42, "no such account"},
      {&plain, "std::runtime_error", std::nullopt, "boom"},
      {&integer, "int", std::nullopt, "an exception not derived from std::exception"},
  };
  for (const Expected& expected : cases) {
    const auto error = error_of(*expected.future);
    ASSERT_TRUE(error);
    EXPECT_EQ(error->kind(), TaskError::Kind::HandlerError) << error->what();
    EXPECT_EQ(error->exception_type(), expected.type);
    EXPECT_EQ(error->code(), expected.code) << expected.type;
    EXPECT_STREQ(error->what(), expected.message);
  }
  Callbacks items;
  const std::vector<std::string_view> payloads = {"1 coded"};
  pool.submit_chunked("throw_failure", payloads, 1, {},
                      [&](std::size_t, const TaskOutcome& o) { items.record("item", o); });
  items.wait_for(1);
  const std::optional<TaskError> item = items.error("item");
  ASSERT_TRUE(item);
  EXPECT_EQ(item->kind(), TaskError::Kind::HandlerError);
  EXPECT_STREQ(item->what(), "coded");
  EXPECT_EQ(item->exception_type(), "procpool::TaskFailure");
  EXPECT_EQ(item->code(), 1);
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
    procpool::Future<std::string> waited = submitter.get();
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

}  // namespace
}  // namespace procpool::test
