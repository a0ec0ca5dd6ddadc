// Fault tests of procpool::Pool about what a worker does with its resources: answers not held
// back behind a slow task, a worker flooding its stderr, a supervisor stderr nobody drains,
// memory limits (max_rss recycling, max_rss_hard kills and RLIMIT_DATA), and a stopped worker
// missing its heartbeats. Real worker processes (the crashy and echo example workers).
//
// Every wait is bounded (pool_test_support.hpp): futures and callbacks with a bound, states the
// pool reaches by itself polled with a bound (poll_until), and a per-test watchdog for the rest.

#include <fcntl.h>  // pipe2, O_CLOEXEC
#include <gtest/gtest.h>
#include <signal.h>  // kill, SIGKILL, SIGSTOP, SIGCONT
#include <unistd.h>  // readlink

#include <chrono>  // durations
#include <memory>  // std::make_shared
#include <mutex>   // std::mutex (events)
#include <string>  // std::string

#include "pool_fault_support.hpp"
#include "pool_test_support.hpp"  // bounded waits, Callbacks, poll_until, /proc readings, watchdog
#include "procpool/pool.hpp"

namespace procpool::test {
namespace {

using namespace std::chrono_literals;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;
using Kind = TaskError::Kind;

// The worker publishes answers in batches while more tasks wait, but never holds one back while a
// handler runs that has not proved fast: the echo's answer arrives while the sleep behind it on
// the same worker is still running.
TEST_F(PoolFault, AnswerIsNotHeldBackBySlowTaskBehindIt) {
  PoolOptions options = crashy();
  options.pipeline_depth = 2;  // both on board whatever the adaptive depth measured
  Pool pool(options);
  const int worker = pid_of(pool);
  struct Thaw {
    int pid;
    ~Thaw() { ::kill(pid, SIGCONT); }
  } thaw{worker};
  // Stopped, so that both tasks are on board when it reads its ring again.
  ASSERT_EQ(::kill(worker, SIGSTOP), 0);
  ASSERT_TRUE(poll_until([&] { return process_state(worker) == 'T'; }));
  auto cancel = std::make_shared<CancelSource>();
  auto quick = pool.submit("echo", "quick");
  auto slow = pool.submit("sleep", "60000", cancellable_by(cancel));
  ASSERT_TRUE(poll_until([&] { return pool.metrics().running == 2; }));
  ASSERT_EQ(::kill(worker, SIGCONT), 0);

  const Outcome out = outcome_of(quick);
  ASSERT_TRUE(out.value) << out.describe();
  EXPECT_EQ(*out.value, "quick");
  EXPECT_EQ(pool.metrics().running, 1u) << "the sleep is no longer running";
  cancel->cancel();
  EXPECT_EQ(kind_of(slow), Kind::Cancelled);
  EXPECT_EQ(pool.metrics().restarts, 0u);
}

// A worker writing its stderr as fast as it can (the pipe never empties while the supervisor
// reads it) must not keep the supervisor thread, and the pool's mutex, to itself: the other
// worker's tasks still complete, and the flood is cancelled like any task.
TEST_F(PoolFault, StderrFloodDoesNotStallTheOtherWorker) {
  PoolOptions options = crashy(2);
  options.worker_stderr = OutputSink::none();  // the tail is still kept; the test stays quiet
  options.pipeline_depth = 1;  // nothing queues behind the flood: the echoes go to the other
  Pool pool(options);
  auto cancel = std::make_shared<CancelSource>();
  auto flood = pool.submit("stderr_flood", "", cancellable_by(cancel));
  ASSERT_TRUE(poll_until([&] { return pool.metrics().running == 1; }));
  Callbacks echoes;
  for (int i = 0; i < 2000; ++i)
    pool.submit("echo", std::to_string(i), {}, echoes.recorder(std::to_string(i)));
  echoes.wait_for(2000);  // bounded: aborts the test if the flood starves them
  for (int i = 0; i < 2000; i += 199) EXPECT_EQ(echoes.value(std::to_string(i)), std::to_string(i));
  EXPECT_EQ(pool.metrics().running, 1u) << "the flood was still running meanwhile";
  cancel->cancel();
  EXPECT_EQ(kind_of(flood), Kind::Cancelled);
}

// Forwarding a worker's stderr to ours must never block the pool: here our stderr is a pipe
// nobody reads, full after 64 KiB. The supervisor drops what it cannot forward (the crash
// report's tail keeps the last lines) instead of blocking in write() with the pool's mutex held.
TEST_F(PoolFault, UndrainedSupervisorStderrDoesNotBlockThePool) {
  int full[2];
  ASSERT_EQ(::pipe2(full, O_CLOEXEC), 0);
  const int saved = ::dup(STDERR_FILENO);
  ASSERT_GE(saved, 0);
  struct Restore {
    int saved, read_end, write_end;
    ~Restore() {
      ::dup2(saved, STDERR_FILENO);
      ::close(saved);
      ::close(read_end);
      ::close(write_end);
    }
  } restore{saved, full[0], full[1]};
  ASSERT_EQ(::dup2(full[1], STDERR_FILENO), STDERR_FILENO);

  PoolOptions options = crashy();  // worker_stderr: our fd 2, the default
  Pool pool(options);
  const std::string line = std::string(1023, 'x') + "\n";
  std::string lines;
  for (int i = 0; i < 256; ++i) lines += line;  // 256 KiB: four times the pipe's buffer
  for (int round = 0; round < 2; ++round) {
    auto words = pool.submit("stderr", lines);
    EXPECT_EQ(value_of(words), "ok");
  }
  auto echo = pool.submit("echo", "still serving");
  EXPECT_EQ(value_of(echo), "still serving");
}

// ---------------------------------------------------------------------------------------------
// Memory limits

// ASan's and TSan's shadow memory counts against RLIMIT_DATA: a worker started under
// max_rss_hard's RLIMIT_DATA cannot even map it (TSan: "can not mmap the shadow memory").
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kShadowSanitizer = true;
#else
constexpr bool kShadowSanitizer = false;
#endif

constexpr std::uint64_t kMiB = 1024 * 1024;

TEST_F(PoolFault, WorkerAboveMaxRssIsRecycledAfterItsTask) {
  PoolOptions options = crashy();
  options.max_rss = 96 * kMiB;
  options.heartbeat_interval = 20ms;
  Pool pool(options);
  const int before = pid_of(pool);
  const std::uint64_t incarnation = slot_metrics(pool)->incarnation;
  auto big = pool.submit("alloc", "160");
  EXPECT_EQ(value_of(big), "ok");  // the task itself completes
  ASSERT_TRUE(poll_until([&] { return replaced_since(pool, incarnation); }))
      << "a worker holding 160 MiB was not recycled";
  const int after = pid_of(pool);
  EXPECT_NE(after, before);
  const PoolMetrics m = pool.metrics();
  EXPECT_EQ(m.restarts, 0u) << "a recycle is not a crash";
  EXPECT_EQ(m.failed, 0u);
}

// The limit counts what the worker forked: a child holding the memory recycles its worker.
TEST_F(PoolFault, AWorkersChildCountsTowardsMaxRss) {
  PoolOptions options = crashy();
  options.max_rss = 96 * kMiB;  // what this test is about
  Pool pool(options);
  const std::uint64_t incarnation = slot_metrics(pool)->incarnation;
  auto forked = pool.submit("child_alloc", "160");
  const int child = std::stoi(value_of(forked));
  ASSERT_TRUE(poll_until([&] { return replaced_since(pool, incarnation); }))
      << "a worker whose child holds 160 MiB was not recycled";
  EXPECT_EQ(pool.metrics().restarts, 0u) << "a recycle is not a crash";
  // Its process group went with it.
  EXPECT_TRUE(poll_until([&] { return ::kill(child, 0) != 0; })) << "the child outlived its worker";
  ::kill(child, SIGKILL);
}

TEST_F(PoolFault, WorkerAboveMaxRssHardIsKilledAndItsTaskFailsMemoryLimit) {
  if (kShadowSanitizer)
    GTEST_SKIP() << "max_rss_hard sets RLIMIT_DATA, which ASan and TSan cannot run under";
  PoolOptions options = crashy();
  options.max_rss_hard = 128 * kMiB;
  options.heartbeat_interval = 20ms;
  Pool pool(options);
  const int victim = pid_of(pool);
  // Shared memory is outside RLIMIT_DATA: only the supervisor's RSS sampling can stop this one.
  auto runaway = pool.submit("alloc_shared", "200");
  const auto error = error_of(runaway);
  ASSERT_TRUE(error);
  EXPECT_EQ(error->kind(), Kind::MemoryLimit) << error->what();
  EXPECT_EQ(error->worker_pid(), victim);
  const std::string what = error->what();
  EXPECT_NE(what.find("above max_rss_hard 128.0 MiB"), std::string::npos) << what;
  EXPECT_NE(what.find("pid " + std::to_string(victim)), std::string::npos) << what;
  EXPECT_NE(pid_of(pool), victim);  // replaced, and serving
}

TEST_F(PoolFault, RunawayAllocationFailsMemoryLimitAtRlimitDataAndWorkerIsRecycled) {
  if (kShadowSanitizer)
    GTEST_SKIP() << "max_rss_hard sets RLIMIT_DATA, which ASan and TSan cannot run under";
  PoolOptions options = crashy();
  options.max_rss_hard = 128 * kMiB;
  Pool pool(options);
  const int worker = pid_of(pool);
  auto runaway = pool.submit("alloc", "1024");  // 1 GiB: refused by RLIMIT_DATA in the worker
  const auto error = error_of(runaway);
  ASSERT_TRUE(error);
  EXPECT_EQ(error->kind(), Kind::MemoryLimit) << error->what();
  EXPECT_EQ(error->worker_pid(), worker);
  const std::string what = error->what();
  EXPECT_NE(what.find("ran out of memory"), std::string::npos) << what;
  EXPECT_NE(what.find("max_rss_hard 128.0 MiB"), std::string::npos) << what;
  ASSERT_TRUE(poll_until([&] { return pid_of(pool) != worker; }))
      << "the worker whose heap overflowed was not recycled";
  EXPECT_EQ(pool.metrics().restarts, 0u);
}

// ---------------------------------------------------------------------------------------------
// Heartbeat

TEST_F(PoolFault, StoppedWorkerMissesHeartbeatsAndIsReplaced) {
  PoolOptions options = crashy();
  options.heartbeat_interval = 20ms;
  options.heartbeat_misses = 5;
  Pool pool(options);
  const int frozen = pid_of(pool);
  ASSERT_GT(frozen, 0);

  struct Thaw {  // if the test stops early while the pool still has it, let the worker go
    Pool& pool;
    int pid;
    ~Thaw() {
      for (const WorkerMetrics& w : pool.metrics().workers) {
        if (w.pid == pid) ::kill(pid, SIGCONT);
      }
    }
  } thaw{pool, frozen};

  ASSERT_EQ(::kill(frozen, SIGSTOP), 0);
  ASSERT_TRUE(poll_until([&] { return process_state(frozen) == 'T'; }))
      << "the worker did not stop";

  // Dispatched onto the stopped worker, which cannot start it: docs/pool.md ("Tasks on board")
  // dispatches it again without spending an attempt, so the default max_attempts of 1 is enough.
  const auto submitted = Clock::now();
  auto task = pool.submit("pid", "");
  const Outcome out = outcome_of(task, 5s);
  ASSERT_TRUE(out.value) << out.describe();
  EXPECT_NE(std::stoi(*out.value), frozen);
  EXPECT_LT(Clock::now() - submitted, 2s);
  const PoolMetrics m = pool.metrics();
  EXPECT_EQ(m.restarts, 1u);
  EXPECT_EQ(m.retried, 0u);  // never started on the stopped worker: not a retry
  EXPECT_EQ(m.failed, 0u);
  EXPECT_NE(process_state(frozen), 'T');  // reaped (gone), not still stopped
}

}  // namespace
}  // namespace procpool::test
