// Fault tests of procpool::Pool: process hygiene (no zombie, no leaked fd, the worker's own fds)
// and shutdown (terminate(), a graceful shutdown(), a worker that ignores the request to stop),
// with real worker processes (the crashy and echo example workers).
//
// Every wait is bounded (pool_test_support.hpp): futures and callbacks with a bound, states the
// pool reaches by itself polled with a bound (poll_until), and a per-test watchdog for the rest.

#include <gtest/gtest.h>
#include <signal.h>       // kill, SIGKILL, SIGSTOP, SIGCONT
#include <sys/syscall.h>  // SYS_clock_nanosleep, SYS_nanosleep

#include <algorithm>  // std::all_of
#include <chrono>     // durations
#include <future>     // std::async
#include <memory>     // std::make_shared
#include <set>        // std::set
#include <string>     // std::string
#include <vector>     // std::vector

#include "pool_fault_support.hpp"
#include "pool_test_support.hpp"  // bounded waits, Callbacks, poll_until, /proc readings, watchdog
#include "procpool/pool.hpp"
#include "test_workers.hpp"

namespace procpool::test {
namespace {

using namespace std::chrono_literals;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;
using Kind = TaskError::Kind;

// ---------------------------------------------------------------------------------------------
// Process hygiene (docs/design-rules.md §22)

TEST_F(PoolFault, NoZombiesNoLeakedFdsAfterPoolWithCrashesIsDestroyed) {
  { Pool warm_up(crashy()); }  // one-time process state (if any) is not a per-pool leak
  ASSERT_TRUE(child_processes().empty());
  const std::size_t fds_before = directory_entries("/proc/self/fd").size();
  const std::string fds_before_text = describe_fds("/proc/self/fd");
  const std::set<std::string> shm_before = directory_entries("/dev/shm");

  {
    PoolOptions options = crashy(2);
    options.cancel_grace = 100ms;
    Pool pool(options);
    auto segv = pool.submit("segfault", "");
    EXPECT_EQ(kind_of(segv), Kind::WorkerCrashed);
    auto abort = pool.submit("abort", "");
    EXPECT_EQ(kind_of(abort), Kind::WorkerCrashed);
    const int victim = pid_of(pool);
    const std::uint64_t restarts = pool.metrics().restarts;
    ASSERT_EQ(::kill(victim, SIGKILL), 0);
    ASSERT_TRUE(poll_until([&] {
      const PoolMetrics m = pool.metrics();
      return m.restarts > restarts &&
             std::all_of(m.workers.begin(), m.workers.end(), [](const WorkerMetrics& w) {
               return w.state == WorkerMetrics::State::Ready;
             });
    })) << "the SIGKILLed worker was not replaced";
    TaskOptions timeout;
    timeout.timeout = 100ms;
    auto hang = pool.submit("hang", "", timeout);
    EXPECT_EQ(kind_of(hang), Kind::Timeout);
    auto cancel = std::make_shared<CancelSource>();
    auto hang2 = pool.submit("hang", "", cancellable_by(cancel));
    int spinner = 0;  // the worker running hang2 (the least loaded one took it)
    for (const WorkerMetrics& w : pool.metrics().workers) {
      if (w.inflight == 1) spinner = w.pid;
    }
    ASSERT_GT(spinner, 0);
    ASSERT_TRUE(wait_until_spinning(spinner));
    cancel->cancel();  // then killed after cancel_grace
    EXPECT_EQ(kind_of(hang2), Kind::Cancelled);
    EXPECT_FALSE(child_processes().empty());  // the pool has workers now
    bounded("Pool destruction", [&pool] { pool.shutdown(); });
  }

  const std::vector<std::string> children = child_processes();
  EXPECT_TRUE(children.empty()) << "children left: " << ::testing::PrintToString(children);
  EXPECT_EQ(directory_entries("/proc/self/fd").size(), fds_before) << "before:\n"
                                                                   << fds_before_text << "after:\n"
                                                                   << describe_fds("/proc/self/fd");
  EXPECT_EQ(directory_entries("/dev/shm"), shm_before);
}

TEST_F(PoolFault, WorkerHasOnlyStdioSegmentAndDoorbellFds) {
  PoolOptions options = small_pool("echo", 2);
  Pool pool(options);
  const PoolMetrics m = pool.metrics();
  ASSERT_EQ(m.workers.size(), 2u);
  for (const WorkerMetrics& w : m.workers) {
    ASSERT_GT(w.pid, 0);
    const std::string dir = "/proc/" + std::to_string(w.pid) + "/fd";
    const std::set<std::string> fds = directory_entries(dir);
    const std::string listing = describe_fds(dir);
    EXPECT_EQ(fds.size(), 5u) << "worker " << w.pid << ":\n" << listing;
    EXPECT_TRUE(fds.count("0") && fds.count("1") && fds.count("2")) << listing;
    int memfds = 0, eventfds = 0;
    for (const std::string& fd : fds) {
      if (fd == "0" || fd == "1" || fd == "2") continue;
      const std::string target = fd_target(dir, fd);
      if (target.find("memfd:procpool-segment") != std::string::npos) {
        ++memfds;
      } else if (target == "anon_inode:[eventfd]") {
        ++eventfds;
      } else {
        ADD_FAILURE() << "unexpected fd " << fd << " -> " << target << " in worker " << w.pid;
      }
    }
    EXPECT_EQ(memfds, 1) << listing;
    EXPECT_EQ(eventfds, 1) << listing;
  }
}

// ---------------------------------------------------------------------------------------------
// Shutdown

// terminate(): the running task (a hung one) and the queued ones fail ShuttingDown at once, the
// worker is killed and reaped before it returns, and nothing is accepted afterwards.
TEST_F(PoolFault, TerminateFailsEveryTaskAtOnceAndReapsTheWorkers) {
  PoolOptions options = crashy(1);
  options.pipeline_depth = 1;  // the echoes stay queued behind the hung task
  Pool pool(options);
  const int worker = pid_of(pool);
  auto hung = pool.submit("hang", "");
  ASSERT_TRUE(poll_until([&] { return pool.metrics().running == 1; }));
  std::vector<procpool::Future<std::string>> queued;
  for (int i = 0; i < 3; ++i) queued.push_back(pool.submit("echo", std::to_string(i)));
  bounded("terminate()", [&pool] { pool.terminate(); });

  const auto error = error_of(hung);
  ASSERT_TRUE(error);
  EXPECT_EQ(error->kind(), Kind::ShuttingDown) << error->what();
  EXPECT_EQ(error->worker_pid(), worker);
  EXPECT_NE(std::string(error->what()).find("pool terminated"), std::string::npos) << error->what();
  EXPECT_NE(std::string(error->what()).find("killed by Pool::terminate()"), std::string::npos)
      << error->what();
  for (auto& future : queued) {
    const auto queued_error = error_of(future);
    ASSERT_TRUE(queued_error);
    EXPECT_EQ(queued_error->kind(), Kind::ShuttingDown);
    EXPECT_NE(std::string(queued_error->what()).find("before the task could run"),
              std::string::npos)
        << queued_error->what();
  }
  EXPECT_TRUE(child_processes().empty());  // reaped before terminate() returned
  EXPECT_EQ(pool.metrics().state, PoolMetrics::State::Stopped);
  auto late = pool.submit("echo", "late");
  EXPECT_EQ(kind_of(late), Kind::ShuttingDown);
  bounded("terminate() again", [&pool] { pool.terminate(); });  // idempotent
  bounded("shutdown() after terminate()", [&pool] { pool.shutdown(); });
}

// A graceful shutdown() waiting for a hung task (30 s of grace) on another thread is cut short
// by terminate(): both return, and the task fails ShuttingDown.
TEST_F(PoolFault, TerminateCutsShortAShutdownInProgress) {
  PoolOptions options = crashy(1);
  options.shutdown_grace = std::chrono::seconds(30);
  Pool pool(options);
  auto hung = pool.submit("hang", "");
  ASSERT_TRUE(poll_until([&] { return pool.metrics().running == 1; }));
  auto stopper = std::async(std::launch::async, [&pool] { pool.shutdown(); });
  ASSERT_TRUE(poll_until([&] { return pool.metrics().state == PoolMetrics::State::ShuttingDown; }));
  bounded("terminate()", [&pool] { pool.terminate(); });
  if (stopper.wait_for(kBound) != std::future_status::ready) overran("shutdown()", kBound);
  stopper.get();
  EXPECT_EQ(kind_of(hung), Kind::ShuttingDown);
  EXPECT_TRUE(child_processes().empty());
}

TEST_F(PoolFault, ShutdownLetsRunningTaskFinish) {
  Pool pool(crashy());
  auto sleeping = pool.submit("sleep", "300");
  auto stopper = std::async(std::launch::async, [&pool] { pool.shutdown(); });
  const Outcome out = outcome_of(sleeping);
  EXPECT_TRUE(out.value) << out.describe();
  EXPECT_EQ(out.value.value_or(""), "slept");
  if (stopper.wait_for(kBound) != std::future_status::ready) overran("shutdown()", kBound);
  stopper.get();

  auto late = pool.submit("echo", "late");
  EXPECT_EQ(kind_of(late), Kind::ShuttingDown);
  EXPECT_EQ(pool.metrics().state, PoolMetrics::State::Stopped);
  EXPECT_TRUE(child_processes().empty());
}

// A worker that ignores the request to stop (here: a handler that never returns and ignores
// SIGTERM) is SIGKILLed after stop_grace, its task fails saying so, and shutdown() returns.
TEST_F(PoolFault, WorkerIgnoringStopIsKilledAfterStopGrace) {
  PoolOptions options = crashy();
  options.shutdown_grace = 100ms;
  options.stop_grace = 200ms;
  Pool pool(options);
  const int worker = pid_of(pool);
  auto stuck = pool.submit("ignore_term_and_hang", "");
  // Running: the handler sits in pause(), after it set SIGTERM to SIG_IGN.
  ASSERT_TRUE(poll_until([&] { return current_syscall(worker) == SYS_pause; }))
      << "the handler did not start";
  ::kill(worker, SIGTERM);  // ignored
  const auto started = Clock::now();
  auto stopper = std::async(std::launch::async, [&pool] { pool.shutdown(); });
  if (stopper.wait_for(kBound) != std::future_status::ready) overran("shutdown()", kBound);
  stopper.get();
  EXPECT_GE(Clock::now() - started, 300ms) << "killed before shutdown_grace + stop_grace";
  const auto error = error_of(stuck);
  ASSERT_TRUE(error);
  EXPECT_EQ(error->kind(), Kind::WorkerCrashed) << error->what();
  EXPECT_EQ(error->worker_pid(), worker);
  EXPECT_NE(std::string(error->what()).find("stop_grace"), std::string::npos) << error->what();
  EXPECT_TRUE(child_processes().empty());
}

}  // namespace
}  // namespace procpool::test
