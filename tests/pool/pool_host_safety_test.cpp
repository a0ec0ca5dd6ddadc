// Callers and hosts: what a completion callback may throw or call (shutdown(), terminate(),
// wait_idle(), the destructor), a Pool copied by fork(), the host's stderr being a broken pipe,
// and ShutdownSignals. Default options apart from the example worker.
//
// The fork() tests run their checks in the child and report through its exit status: the child
// never returns into the test framework (it ends with _exit), and the parent bounds every wait
// on it and kills it if it overruns.
#include <fcntl.h>        // O_CLOEXEC
#include <poll.h>         // poll
#include <signal.h>       // kill
#include <sys/syscall.h>  // SYS_pidfd_open
#include <sys/wait.h>     // waitpid
#include <unistd.h>       // fork, pipe2, _exit

#include <atomic>     // std::atomic
#include <cerrno>     // errno
#include <memory>     // std::unique_ptr
#include <stdexcept>  // std::runtime_error
#include <string>     // std::string

#include "pool_test_support.hpp"
#include "procpool/shutdown_signals.hpp"

namespace procpool::test {
namespace {

using std::chrono::milliseconds;

PoolOptions crashy_defaults() {
  PoolOptions options;
  options.executable = worker_path("crashy");
  return options;
}

// The wait status of child `pid`, waited for at most `bound` (then it is SIGKILLed, and the
// test fails).
int wait_child(pid_t pid, milliseconds bound = kBound) {
  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  bool exited = false;
  if (pidfd >= 0) {
    pollfd p{pidfd, POLLIN, 0};
    exited = ::poll(&p, 1, static_cast<int>(bound.count())) == 1;
    ::close(pidfd);
  }
  if (!exited) {
    ADD_FAILURE() << "child " << pid << " did not exit within " << bound.count() << " ms; killed";
    ::kill(pid, SIGKILL);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return status;
}

std::string describe_status(int status) {
  if (WIFEXITED(status)) return "exit " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "killed by signal " + std::to_string(WTERMSIG(status));
  return "status " + std::to_string(status);
}

// Reads one byte the child reports through `fd`, waiting at most `bound`; -1 if none came.
int read_report(int fd, milliseconds bound = kBound) {
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(bound.count())) != 1) return -1;
  unsigned char byte = 0;
  return ::read(fd, &byte, 1) == 1 ? byte : -1;
}

// Waits (bounded) until `flag` is set by a callback.
void wait_flag(std::mutex& mutex, std::condition_variable& cv, const bool& flag,
               const std::string& what) {
  std::unique_lock lock(mutex);
  if (!cv.wait_for(lock, kBound, [&] { return flag; })) overran(what, kBound);
}

// ---------------------------------------------------------------------------------------------
// A completion callback that throws

TEST(CallbackErrors, ThrowOnThePoolsThreadIsReportedAndThePoolGoesOn) {
  Watchdog watchdog(std::chrono::seconds(60));
  Pool pool(crashy_defaults());
  Callbacks callbacks;
  ::testing::internal::CaptureStderr();
  // The test thread only waits on its condition variable: the pool's own thread delivers.
  pool.submit("echo", "a", {}, [&](const TaskOutcome&) {
    callbacks.add();
    throw std::runtime_error("boom from a callback");
  });
  callbacks.wait_for(1);
  pool.submit("echo", "b", {}, callbacks.recorder("b"));
  callbacks.wait_for(2);
  bounded("wait_idle", [&] { pool.wait_idle(); });
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(callbacks.value("b"), "b");
  EXPECT_EQ(pool.metrics().callback_errors, 1u);
  EXPECT_NE(err.find("completion callback threw: boom from a callback"), std::string::npos) << err;
  EXPECT_NE(pool.metrics().to_json().find("\"callback_errors\":1"), std::string::npos);
}

TEST(CallbackErrors, ThrowInsideAnotherThreadsGetDoesNotEscapeAndTheBatchIsDelivered) {
  Watchdog watchdog(std::chrono::seconds(60));
  Pool pool(crashy_defaults());
  constexpr std::size_t kTasks = 8;
  std::vector<std::string> storage;
  for (std::size_t i = 0; i < kTasks; ++i) storage.push_back(std::to_string(i));
  const std::vector<std::string_view> payloads(storage.begin(), storage.end());
  Callbacks callbacks;
  pool.submit_batch("echo", payloads, {}, [&](std::size_t index, const TaskOutcome&) {
    callbacks.add();
    if (index == 0) throw std::runtime_error("item 0 throws");
  });
  auto future = pool.submit("echo", "mine");
  // get() drains the rings itself: the batch's callbacks may run inside it. Their exception is
  // not this future's.
  EXPECT_EQ(value_of(future), "mine");
  callbacks.wait_for(kTasks);
  bounded("wait_idle", [&] { pool.wait_idle(); });
  EXPECT_EQ(callbacks.total(), kTasks);
  EXPECT_EQ(pool.metrics().callback_errors, 1u);
}

TEST(CallbackErrors, ChunkedItemThatThrowsLeavesTheOtherItemsDelivered) {
  Watchdog watchdog(std::chrono::seconds(60));
  Pool pool(crashy_defaults());
  std::vector<std::string> storage;
  for (int i = 0; i < 10; ++i) storage.push_back("item" + std::to_string(i));
  const std::vector<std::string_view> payloads(storage.begin(), storage.end());
  Callbacks callbacks;
  pool.submit_chunked("echo", payloads, 10, {}, [&](std::size_t index, const TaskOutcome& o) {
    callbacks.record(storage[index], o);
    if (index == 3) throw 42;  // not even a std::exception
  });
  callbacks.wait_for(10);
  bounded("wait_idle", [&] { pool.wait_idle(); });
  for (const std::string& key : storage) EXPECT_EQ(callbacks.value(key), key);
  EXPECT_EQ(pool.metrics().callback_errors, 1u);
}

// ---------------------------------------------------------------------------------------------
// Stopping the pool from one of its callbacks: never a hang

TEST(StopFromCallback, ShutdownReturnsAndTheStopCompletesOnceTheCallbackReturns) {
  Watchdog watchdog(std::chrono::seconds(60));
  Pool pool(crashy_defaults());
  std::mutex mutex;
  std::condition_variable cv;
  bool returned = false;
  pool.submit("echo", "x", {}, [&](const TaskOutcome&) {
    pool.shutdown();
    std::lock_guard lock(mutex);
    returned = true;
    cv.notify_all();
  });
  wait_flag(mutex, cv, returned, "shutdown() inside a callback");
  bounded("shutdown() after it", [&] { pool.shutdown(); });
  EXPECT_EQ(pool.metrics().state, PoolMetrics::State::Stopped);
  auto late = pool.submit("echo", "late");
  EXPECT_EQ(kind_of(late), TaskError::Kind::ShuttingDown);
}

TEST(StopFromCallback, TerminateReturnsAndTheWorkersAreKilled) {
  Watchdog watchdog(std::chrono::seconds(60));
  Pool pool(crashy_defaults());
  auto hung = pool.submit("hang", "");
  std::mutex mutex;
  std::condition_variable cv;
  bool returned = false;
  pool.submit("echo", "x", {}, [&](const TaskOutcome&) {
    pool.terminate();
    std::lock_guard lock(mutex);
    returned = true;
    cv.notify_all();
  });
  wait_flag(mutex, cv, returned, "terminate() inside a callback");
  EXPECT_EQ(kind_of(hung), TaskError::Kind::ShuttingDown);
  bounded("shutdown() after it", [&] { pool.shutdown(); });
  EXPECT_EQ(pool.metrics().state, PoolMetrics::State::Stopped);
}

TEST(StopFromCallback, WaitIdleIsRefusedWithAnError) {
  Watchdog watchdog(std::chrono::seconds(60));
  Pool pool(crashy_defaults());
  std::mutex mutex;
  std::condition_variable cv;
  bool returned = false;
  std::string refused;
  pool.submit("echo", "x", {}, [&](const TaskOutcome&) {
    std::string what;
    try {
      pool.wait_idle();
    } catch (const Error& e) {
      what = e.what();
    }
    std::lock_guard lock(mutex);
    refused = what;
    returned = true;
    cv.notify_all();
  });
  wait_flag(mutex, cv, returned, "wait_idle() inside a callback");
  EXPECT_NE(refused.find("completion callbacks"), std::string::npos) << refused;
  auto after = pool.submit("echo", "after");
  EXPECT_EQ(value_of(after), "after");
  bounded("wait_idle", [&] { pool.wait_idle(); });
}

TEST(StopFromCallback, DestroyingThePoolAndItsLastReferenceInCallbacks) {
  Watchdog watchdog(std::chrono::seconds(60));
  auto pool = std::make_unique<Pool>(crashy_defaults());
  std::vector<int> workers;
  for (const WorkerMetrics& w : pool->metrics().workers) workers.push_back(w.pid);
  ASSERT_FALSE(workers.empty());
  // A future that keeps the pool's engine alive after the Pool is gone; dropped by a callback
  // that runs after the one destroying the Pool (its task waits behind a sleep).
  auto held = std::make_shared<procpool::Future<std::string>>(pool->submit("echo", "held"));
  std::mutex mutex;
  std::condition_variable cv;
  bool submitted = false, destroyed = false, dropped = false;
  pool->submit("sleep", "50", {}, [&, held](const TaskOutcome&) mutable {
    held.reset();  // the engine's last reference, inside a callback
    std::lock_guard lock(mutex);
    dropped = true;
    cv.notify_all();
  });
  pool->submit("echo", "x", {}, [&](const TaskOutcome&) {
    wait_flag(mutex, cv, submitted, "the test thread to leave submit()");
    pool.reset();  // ~Pool inside its own callback
    std::lock_guard lock(mutex);
    destroyed = true;
    cv.notify_all();
  });
  {
    std::lock_guard lock(mutex);
    submitted = true;  // from here on only callbacks touch `pool`
    cv.notify_all();
  }
  wait_flag(mutex, cv, destroyed, "~Pool inside a callback");
  wait_flag(mutex, cv, dropped, "the last reference dropped inside a callback");
  held.reset();
  // The stop completes in the background: every worker exits and is reaped.
  EXPECT_TRUE(poll_until(
      [&] {
        for (const int pid : workers) {
          if (::kill(pid, 0) == 0 || errno != ESRCH) return false;
        }
        return true;
      },
      kBound));
}

// ---------------------------------------------------------------------------------------------
// fork() with a Pool: the child's copy is inert

TEST(ForkedChild, ItsCopyOfThePoolFailsFastAndLeavesTheParentsAlone) {
  Watchdog watchdog(std::chrono::seconds(60));
  auto pool = std::make_unique<Pool>(crashy_defaults());
  const auto before = pool->metrics();
  auto pending = pool->submit("sleep", "500");  // unresolved when the child is forked
  const pid_t parent = ::getpid();
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    const std::string owner = "belongs to process " + std::to_string(parent);
    auto refused = [&](auto&& call) {
      try {
        call();
      } catch (const Error& e) {
        return std::string(e.what()).find(owner) != std::string::npos;
      } catch (...) {
      }
      return false;
    };
    if (!refused([&] { (void)pool->submit("echo", "child"); })) ::_exit(10);
    if (!refused([&] { pool->submit("echo", "child", {}, [](const TaskOutcome&) {}); })) {
      ::_exit(11);
    }
    if (!refused([&] { (void)pending.get(); })) ::_exit(12);
    if (!refused([&] { pool->wait_idle(); })) ::_exit(13);
    if (!refused([&] { (void)pool->metrics(); })) ::_exit(14);
    if (!refused([&] { pool->shutdown(); })) ::_exit(15);
    if (!refused([&] { pool->terminate(); })) ::_exit(16);
    if (!pool->shared_memory().empty()) ::_exit(17);
    pool.reset();  // returns at once, touching nothing shared
    ::_exit(0);
  }
  const int status = wait_child(child, std::chrono::seconds(10));
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << describe_status(status);
  // The parent's pool never saw the child: its task and new ones get their own answers, from
  // the same workers.
  EXPECT_EQ(value_of(pending), "slept");
  for (int i = 0; i < 20; ++i) {
    auto f = pool->submit("echo", "parent" + std::to_string(i));
    EXPECT_EQ(value_of(f), "parent" + std::to_string(i));
  }
  const auto after = pool->metrics();
  EXPECT_EQ(after.restarts, 0u);
  ASSERT_EQ(after.workers.size(), before.workers.size());
  for (std::size_t i = 0; i < after.workers.size(); ++i) {
    EXPECT_EQ(after.workers[i].pid, before.workers[i].pid);
  }
}

// ---------------------------------------------------------------------------------------------
// The host's stderr is a pipe whose reader is gone

TEST(HostStderr, BrokenPipeNeverRaisesSigpipeInTheHost) {
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(fds[0]);  // nobody reads: a write gets EPIPE, and SIGPIPE unless the pool avoids it
    if (::dup2(fds[1], STDERR_FILENO) < 0) ::_exit(20);
    ::close(fds[1]);
    try {
      Pool pool(crashy_defaults());
      auto line = pool.submit("stderr", "a line the pool forwards to its host\n");
      if (line.get() != "ok") ::_exit(21);
      // A callback that throws is reported on the same stderr.
      pool.submit("echo", "x", {}, [](const TaskOutcome&) { throw std::runtime_error("x"); });
      pool.wait_idle();
      pool.shutdown();  // reaping reads (and forwards) whatever the worker wrote last
      if (pool.metrics().callback_errors != 1) ::_exit(22);
    } catch (...) {
      ::_exit(23);
    }
    ::_exit(0);
  }
  ::close(fds[0]);
  ::close(fds[1]);
  const int status = wait_child(child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << describe_status(status);
}

// ---------------------------------------------------------------------------------------------
// ShutdownSignals: SIGTERM/SIGINT stop an embedded pool

// Forks a child that embeds a pool with ShutdownSignals and runs `body(pool, signals, report)`;
// `report(byte)` tells the parent how far it got. Returns the child's pid and the report fd.
template <class Body>
std::pair<pid_t, int> fork_signalled_host(Body body) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return {-1, -1};
  const pid_t child = ::fork();
  if (child != 0) {
    ::close(fds[1]);
    return {child, fds[0]};
  }
  ::close(fds[0]);
  auto report = [fd = fds[1]](unsigned char byte) { (void)!::write(fd, &byte, 1); };
  int code = 0;
  try {
    Pool pool(crashy_defaults());
    {
      ShutdownSignals signals(pool);
      code = body(pool, signals, report);
    }
  } catch (...) {
    code = 40;
  }
  ::_exit(code);
}

TEST(ShutdownSignalsTest, SigtermShutsThePoolDownGracefully) {
  auto [child, reports] =
      fork_signalled_host([](Pool& pool, ShutdownSignals& signals, auto report) {
        auto running = pool.submit("sleep", "300");
        report(1);
        if (!signals.wait_for(std::chrono::seconds(20))) return 30;
        if (signals.first_signal() != SIGTERM || signals.received() != 1) return 31;
        if (pool.metrics().state != PoolMetrics::State::Stopped) return 32;
        try {
          if (running.get() != "slept") return 33;  // finished: a graceful stop
        } catch (...) {
          return 34;
        }
        auto late = pool.submit("echo", "late");
        try {
          late.get();
          return 35;
        } catch (const TaskError& e) {
          if (e.kind() != TaskError::Kind::ShuttingDown) return 36;
        }
        return 0;
      });
  ASSERT_GT(child, 0);
  ASSERT_EQ(read_report(reports), 1) << "the child did not start its pool";
  ::kill(child, SIGTERM);
  const int status = wait_child(child);
  ::close(reports);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << describe_status(status);
}

TEST(ShutdownSignalsTest, ASecondSignalTerminates) {
  auto [child, reports] =
      fork_signalled_host([](Pool& pool, ShutdownSignals& signals, auto report) {
        auto hung = pool.submit("hang", "");  // a graceful stop would wait out shutdown_grace
        report(1);
        // Bounded: the parent signals within its own bounds, or kills this process.
        for (int i = 0; i < 2000 && signals.received() == 0; ++i) {
          std::this_thread::sleep_for(milliseconds(5));  // the poll interval
        }
        if (signals.received() == 0) return 30;
        report(2);
        if (!signals.wait_for(std::chrono::seconds(20))) return 31;
        if (signals.received() != 2) return 32;
        try {
          hung.get();
          return 33;
        } catch (const TaskError& e) {
          if (e.kind() != TaskError::Kind::ShuttingDown) return 34;
          if (std::string(e.what()).find("terminate") == std::string::npos) return 35;
        }
        return 0;
      });
  ASSERT_GT(child, 0);
  ASSERT_EQ(read_report(reports), 1) << "the child did not start its pool";
  ::kill(child, SIGTERM);
  ASSERT_EQ(read_report(reports), 2) << "the child did not see the first signal";
  ::kill(child, SIGINT);
  const int status = wait_child(child);
  ::close(reports);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << describe_status(status);
}

TEST(ShutdownSignalsTest, OneInstanceAtATimeAndHandlersRestored) {
  struct sigaction before {};
  ::sigaction(SIGTERM, nullptr, &before);
  {
    ShutdownSignals first([] {}, [] {});
    EXPECT_THROW(ShutdownSignals([] {}, [] {}), Error);
    struct sigaction during {};
    ::sigaction(SIGTERM, nullptr, &during);
    EXPECT_NE(during.sa_handler, before.sa_handler);
  }
  struct sigaction after {};
  ::sigaction(SIGTERM, nullptr, &after);
  EXPECT_EQ(after.sa_handler, before.sa_handler);
  ShutdownSignals again([] {}, [] {});  // the slot is free again
}

}  // namespace
}  // namespace procpool::test
