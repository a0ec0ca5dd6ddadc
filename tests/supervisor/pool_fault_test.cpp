// Fault tests of procpool::Pool with real worker processes (the crashy example worker, and echo):
// restarts after SIGKILL / SIGSEGV / SIGABRT / exit, crash reports with the last stderr lines,
// start-up backoff and the failed state, retries and poison tasks, tasks on board of a crashed
// worker, timeouts, cancellation (queued, cooperative, and past cancel_grace), the heartbeat,
// process hygiene (no zombie, no leaked fd, the worker's own fds) and shutdown.
//
// Every fault is produced by a real cause (a signal sent from here, a crashing or hanging
// handler, a worker that exits before READY) and every wait is bounded:
//   - the pool's futures are std::launch::deferred (wait_for() reports `deferred`), so get() runs
//     on a std::async thread that is waited for with a bound;
//   - callbacks are awaited on a condition variable with a bound;
//   - a state the pool reaches by itself (a worker replaced, a process stopped) is polled with a
//     bound (poll_until), never assumed after a sleep;
//   - a per-test watchdog aborts the process if anything else (a destructor) hangs.
// Sleeping inside a worker handler ("sleep") is part of a scenario, not synchronisation.

#include <fcntl.h>  // pipe2, O_CLOEXEC
#include <gtest/gtest.h>
#include <signal.h>        // kill, SIGKILL, SIGSTOP, SIGCONT
#include <sys/resource.h>  // setrlimit (no core files from crashing workers)
#include <sys/syscall.h>   // SYS_clock_nanosleep, SYS_nanosleep
#include <unistd.h>        // readlink

#include <algorithm>  // std::all_of
#include <chrono>     // durations
#include <fstream>    // std::ifstream
#include <future>     // std::async
#include <memory>     // std::make_shared
#include <mutex>      // std::mutex (events)
#include <optional>   // std::optional
#include <set>        // std::set
#include <sstream>    // std::istringstream
#include <string>     // std::string
#include <vector>     // std::vector

#include "pool_test_support.hpp"  // bounded waits, Callbacks, poll_until, /proc readings, watchdog
#include "procpool/error.hpp"
#include "procpool/pool.hpp"
#include "test_timing.hpp"  // scaled
#include "test_workers.hpp"

namespace procpool::test {
namespace {

using namespace std::chrono_literals;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;
using Kind = TaskError::Kind;

constexpr milliseconds kTestBound = 90s;  // the whole test, destructors included

int pid_of(Pool& pool, const TaskOptions& options = {}) {
  auto future = pool.submit("pid", "", options);
  const std::string text = value_of(future);
  return text.empty() ? 0 : std::stoi(text);
}

std::optional<WorkerMetrics> slot_metrics(const Pool& pool, unsigned slot = 0) {
  for (const WorkerMetrics& w : pool.metrics().workers) {
    if (w.slot == slot) return w;
  }
  return std::nullopt;
}

// The single-worker pool's slot 0 is READY with an incarnation above `incarnation`.
bool replaced_since(const Pool& pool, std::uint64_t incarnation) {
  const auto w = slot_metrics(pool);
  return w && w->incarnation > incarnation && w->state == WorkerMetrics::State::Ready;
}

// --- /proc helpers ---

char process_state(int pid) {
  char state = '?';
  long ppid = 0;
  return read_state_and_ppid(std::to_string(pid), state, ppid) ? state : '?';
}

std::string fd_target(const std::string& fd_dir, const std::string& fd) {
  char buffer[4096];
  const ssize_t n = ::readlink((fd_dir + "/" + fd).c_str(), buffer, sizeof buffer - 1);
  return n < 0 ? std::string("?") : std::string(buffer, static_cast<std::size_t>(n));
}

std::string describe_fds(const std::string& fd_dir) {
  std::string out;
  for (const std::string& fd : directory_entries(fd_dir)) {
    out += "  " + fd + " -> " + fd_target(fd_dir, fd) + "\n";
  }
  return out;
}

// The syscall a process's main thread is in (from /proc/<pid>/syscall), -1 if running or unknown.
long current_syscall(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/syscall");
  long number = -1;
  if (!(in >> number)) return -1;
  return number;
}

// CPU time (user + system, clock ticks) a process has used, from /proc/<pid>/stat; -1 if gone.
long long cpu_ticks(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return -1;
  const auto close = line.rfind(')');
  if (close == std::string::npos || close + 2 >= line.size()) return -1;
  std::istringstream rest(line.substr(close + 2));
  std::string field;
  long long utime = 0, stime = 0;
  for (int i = 0; i < 11; ++i) rest >> field;  // state .. cmajflt
  if (!(rest >> utime >> stime)) return -1;
  return utime + stime;
}

// Waits (bounded) until the worker's spinning "hang" handler is observably running: the process
// burns CPU continuously (an idle worker spins at most ~50 us per wait, then sleeps).
bool wait_until_spinning(int pid) {
  const long long start = cpu_ticks(pid);
  return start >= 0 && poll_until([&] { return cpu_ticks(pid) >= start + 3; });
}

// --- the fixture ---

class PoolFault : public ::testing::Test {
 protected:
  void SetUp() override {
    // Crashing workers inherit this: no core files (and no core-dump delay) from them.
    rlimit limit{};
    if (::getrlimit(RLIMIT_CORE, &limit) == 0) {
      limit.rlim_cur = 0;
      ::setrlimit(RLIMIT_CORE, &limit);
    }
  }

  static PoolOptions crashy(unsigned workers = 1) { return small_pool("crashy", workers); }

  Watchdog watchdog_{kTestBound};
};

// ---------------------------------------------------------------------------------------------
// Restarts

TEST_F(PoolFault, SigkilledWorkerIsReplacedAndPoolKeepsServing) {
  Pool pool(crashy());
  const int victim = pid_of(pool);
  ASSERT_GT(victim, 0);
  const auto before = slot_metrics(pool);
  ASSERT_TRUE(before);
  EXPECT_EQ(before->pid, victim);

  ASSERT_EQ(::kill(victim, SIGKILL), 0);
  // The pool notices through the worker's pidfd and refills the slot.
  ASSERT_TRUE(poll_until([&] { return replaced_since(pool, before->incarnation); }))
      << "slot 0 was not refilled after SIGKILL";

  const int successor = pid_of(pool);
  EXPECT_GT(successor, 0);
  EXPECT_NE(successor, victim);
  const PoolMetrics m = pool.metrics();
  EXPECT_GE(m.restarts, 1u);
  ASSERT_EQ(m.workers.size(), 1u);
  EXPECT_GT(m.workers[0].incarnation, before->incarnation);
  EXPECT_EQ(m.workers[0].restarts, 1u);
  EXPECT_EQ(m.workers[0].pid, successor);
  EXPECT_EQ(m.state, PoolMetrics::State::Running);
}

// A crashing handler: the task fails WorkerCrashed naming the worker's pid and its fate, and the
// next task runs on a fresh worker.
void expect_crash_then_recovery(const std::string& handler, const std::string& input,
                                const std::vector<std::string>& mentions) {
  Pool pool(small_pool("crashy", 1));
  const int victim = pid_of(pool);
  ASSERT_GT(victim, 0);
  const std::uint64_t incarnation = slot_metrics(pool)->incarnation;

  auto crash = pool.submit(handler, input);
  const auto error = error_of(crash);
  ASSERT_TRUE(error);
  EXPECT_EQ(error->kind(), Kind::WorkerCrashed) << error->what();
  EXPECT_EQ(error->worker_pid(), victim);
  const std::string what = error->what();
  for (const std::string& mention : mentions) {
    EXPECT_NE(what.find(mention), std::string::npos) << "\"" << mention << "\" not in: " << what;
  }
  EXPECT_NE(what.find(std::to_string(victim)), std::string::npos) << what;

  auto next = pool.submit("echo", "still here");
  EXPECT_EQ(value_of(next), "still here");
  const int successor = pid_of(pool);
  EXPECT_NE(successor, victim);
  const PoolMetrics m = pool.metrics();
  EXPECT_EQ(m.restarts, 1u);
  ASSERT_EQ(m.workers.size(), 1u);
  EXPECT_GT(m.workers[0].incarnation, incarnation);
}

TEST_F(PoolFault, SegfaultFailsTaskWithSignalAndRestartsWorker) {
  // The crash report says what ended the worker, how long it was up and what it was running.
  expect_crash_then_recovery(
      "segfault", "",
      {"signal 11", "SIGSEGV", ", up ", "running a \"segfault\" task (attempt 1 of 1)"});
}

TEST_F(PoolFault, AbortFailsTaskWithSigabrtAndRestartsWorker) {
  expect_crash_then_recovery("abort", "", {"signal 6", "SIGABRT"});
}

TEST_F(PoolFault, ExitFailsTaskWithExitCodeAndRestartsWorker) {
  expect_crash_then_recovery("exit", "7", {"exit code 7"});
}

TEST_F(PoolFault, CrashReportIncludesLastStderrLines) {
  Pool pool(crashy());
  auto words = pool.submit("stderr", "last words\n");
  ASSERT_EQ(value_of(words), "ok");
  auto crash = pool.submit("segfault", "");
  const auto error = error_of(crash);
  ASSERT_TRUE(error);
  EXPECT_EQ(error->kind(), Kind::WorkerCrashed);
  const std::string what = error->what();
  EXPECT_NE(what.find("last words"), std::string::npos) << what;
  EXPECT_NE(what.find("SIGSEGV"), std::string::npos) << what;
}

// ---------------------------------------------------------------------------------------------
// Start-up failures, backoff and the failed state

// A program that dies before READY every time: the constructor backs off between the starts
// (RestartPolicy's full jitter over a capped exponential, honoured by the restart times) and
// throws after crash_loop_after broken starts, with the reason.
TEST_F(PoolFault, WorkerDyingAtStartBacksOffThenConstructorThrows) {
  PoolOptions options = crashy();
  options.args = {"--exit-before-ready", "1"};
  options.restart.crash_loop_after = 3;
  auto events = std::make_shared<std::vector<PoolEvent>>();
  auto events_mu = std::make_shared<std::mutex>();
  options.on_event = [events, events_mu](const PoolEvent& e) {
    std::lock_guard lock(*events_mu);
    events->push_back(e);
  };

  const std::optional<std::string> error = bounded("Pool construction", [options] {
    std::optional<std::string> out;
    try {
      Pool pool(options);
    } catch (const TaskError& e) {
      out = std::string("unexpected TaskError: ") + e.what();
    } catch (const Error& e) {
      out = e.what();
    }
    return out;
  });
  ASSERT_TRUE(error) << "the constructor did not throw";
  EXPECT_NE(error->find("3 failures in a row"), std::string::npos) << *error;
  EXPECT_NE(error->find("exit code 1"), std::string::npos) << *error;
  EXPECT_NE(error->find("crashy: exiting before ready as asked"), std::string::npos) << *error;

  // Starts 1 and 2 were each followed by a WorkerRestarting event whose delay is below the
  // documented bound, and the next start came no earlier than that delay.
  std::lock_guard lock(*events_mu);
  std::vector<const PoolEvent*> restarting, started;
  for (const PoolEvent& e : *events) {
    if (e.kind == PoolEvent::Kind::WorkerRestarting) restarting.push_back(&e);
    if (e.kind == PoolEvent::Kind::WorkerStarted) started.push_back(&e);
  }
  ASSERT_EQ(started.size(), 3u);
  ASSERT_EQ(restarting.size(), 2u);
  const milliseconds bounds[] = {options.restart.initial_backoff,
                                 2 * options.restart.initial_backoff};
  for (std::size_t n = 0; n < 2; ++n) {
    EXPECT_GE(restarting[n]->delay.count(), 0);
    EXPECT_LT(restarting[n]->delay, bounds[n]) << "restart " << n + 1;
    EXPECT_EQ(restarting[n]->consecutive_failures, n + 1);
    EXPECT_GE(started[n + 1]->at - restarting[n]->at, restarting[n]->delay)
        << "restart " << n + 1 << " came before its backoff";
  }
  EXPECT_TRUE(child_processes().empty());  // every start was reaped
}

// Tasks that crash their worker are charged for it, each on its own: the workers that served
// them are restarted at once and the pool never fails (the old policy failed it after five such
// deaths within min_uptime, stopping every healthy worker).
TEST_F(PoolFault, CrashingTasksAreChargedToThemselvesAndThePoolKeepsServing) {
  Pool pool(crashy());
  std::vector<std::future<std::string>> crashes;
  for (int i = 0; i < 8; ++i) crashes.push_back(pool.submit("segfault", ""));
  auto echo = pool.submit("echo", "still here");
  for (auto& f : crashes) {
    const auto e = error_of(f);
    ASSERT_TRUE(e);
    EXPECT_EQ(e->kind(), Kind::WorkerCrashed) << e->what();
    EXPECT_NE(std::string(e->what()).find("SIGSEGV"), std::string::npos) << e->what();
  }
  EXPECT_EQ(value_of(echo), "still here");
  const PoolMetrics m = pool.metrics();
  EXPECT_EQ(m.state, PoolMetrics::State::Running);
  EXPECT_EQ(m.restarts, 8u);
  EXPECT_EQ(m.failed, 8u);
  auto late = pool.submit("echo", "late");
  EXPECT_EQ(value_of(late), "late");
}

// Opt-in give-up: give_up_after broken starts in a row fail the pool. Here the program exits
// by itself while idle right after READY, every time (a broken start each time).
TEST_F(PoolFault, GiveUpAfterIsAnOptInThatFailsThePool) {
  PoolOptions options = crashy();
  options.args = {"--exit-after-ready", "20"};
  options.restart.give_up_after = 3;
  options.restart.crash_loop_after = 0;  // the constructor must not throw first
  Pool pool(options);
  ASSERT_TRUE(poll_until([&] { return pool.metrics().state == PoolMetrics::State::Failed; }))
      << pool.metrics().to_json();
  auto late = pool.submit("echo", "late");
  const auto rejected = error_of(late);
  ASSERT_TRUE(rejected);
  EXPECT_EQ(rejected->kind(), Kind::PoolFailed) << rejected->what();
  EXPECT_NE(std::string(rejected->what()).find("3 failures in a row"), std::string::npos)
      << rejected->what();
  EXPECT_NE(std::string(rejected->what()).find("exit code 3"), std::string::npos)
      << rejected->what();
}

// An idle worker SIGKILLed from outside, again and again, is restarted at once each time: the
// kill says nothing about the program, so the slot neither backs off nor fails.
TEST_F(PoolFault, IdleWorkerKilledFromOutsideIsRestartedAtOnceEveryTime) {
  PoolOptions options = crashy();
  options.restart.give_up_after = 2;  // would fail the pool if the kills counted
  Pool pool(options);
  for (int round = 0; round < 6; ++round) {
    const auto w = slot_metrics(pool);
    ASSERT_TRUE(w && w->pid > 0);
    ASSERT_EQ(::kill(w->pid, SIGKILL), 0);
    ASSERT_TRUE(poll_until([&] { return replaced_since(pool, w->incarnation); }))
        << "round " << round << ": " << pool.metrics().to_json();
    EXPECT_EQ(slot_metrics(pool)->consecutive_failures, 0u);
  }
  EXPECT_EQ(pool.metrics().state, PoolMetrics::State::Running);
  auto echo = pool.submit("echo", "fine");
  EXPECT_EQ(value_of(echo), "fine");
}

// ---------------------------------------------------------------------------------------------
// Retries and poison

TEST_F(PoolFault, TaskIsRetriedAfterItsWorkerCrashesWhenAttemptsRemain) {
  PoolOptions options = crashy();
  options.max_attempts = 2;
  Pool pool(options);

  auto first = pool.submit("attempt", "");
  EXPECT_EQ(value_of(first), "1");
  EXPECT_EQ(pool.metrics().retried, 0u);

  auto retried = pool.submit("crash_on_first_attempt", "survivor");
  EXPECT_EQ(value_of(retried), "survivor");
  const PoolMetrics m = pool.metrics();
  EXPECT_EQ(m.retried, 1u);
  EXPECT_EQ(m.restarts, 1u);
  EXPECT_EQ(m.failed, 0u);
}

TEST_F(PoolFault, PoisonTaskFailsAfterExactlyMaxAttemptsAndPoolStillServes) {
  Pool pool(crashy());
  const PoolMetrics before = pool.metrics();

  TaskOptions three;
  three.max_attempts = 3;
  auto poison = pool.submit("segfault", "", three);
  const auto error = error_of(poison);
  ASSERT_TRUE(error);
  EXPECT_EQ(error->kind(), Kind::WorkerCrashed) << error->what();
  const std::string what = error->what();
  EXPECT_NE(what.find("poison"), std::string::npos) << what;
  EXPECT_NE(what.find("all 3 attempts"), std::string::npos) << what;
  EXPECT_NE(what.find("SIGSEGV"), std::string::npos) << what;

  const PoolMetrics after = pool.metrics();
  EXPECT_EQ(after.restarts - before.restarts, 3u);
  EXPECT_EQ(after.retried - before.retried, 2u);
  EXPECT_EQ(after.failed - before.failed, 1u);

  auto next = pool.submit("echo", "after the poison");
  EXPECT_EQ(value_of(next), "after the poison");
  EXPECT_EQ(pool.metrics().state, PoolMetrics::State::Running);
}

// ---------------------------------------------------------------------------------------------
// Tasks on board of a crashed worker

TEST_F(PoolFault, TasksQueuedBehindACrashAreNeitherLostNorRunTwice) {
  PoolOptions options = crashy();
  options.pipeline_depth = 8;
  Pool pool(options);
  Callbacks callbacks;

  // All six go into the one worker's pipeline at once; the segfault runs first.
  pool.submit("segfault", "", {},
              [&callbacks](const TaskOutcome& o) { callbacks.record("segfault", o); });
  for (int i = 0; i < 5; ++i) {
    const std::string key = "echo-" + std::to_string(i);
    pool.submit("echo", key, {},
                [&callbacks, key](const TaskOutcome& o) { callbacks.record(key, o); });
  }
  callbacks.wait_for(6);
  bounded("wait_idle()", [&pool] { pool.wait_idle(); });

  EXPECT_EQ(callbacks.total(), 6u);
  EXPECT_EQ(callbacks.calls("segfault"), 1);
  const auto crash = callbacks.error("segfault");
  ASSERT_TRUE(crash);
  EXPECT_EQ(crash->kind(), Kind::WorkerCrashed) << crash->what();
  for (int i = 0; i < 5; ++i) {
    const std::string key = "echo-" + std::to_string(i);
    EXPECT_EQ(callbacks.calls(key), 1) << key;
    EXPECT_EQ(callbacks.value(key).value_or("<failed>"), key);
  }
  const PoolMetrics m = pool.metrics();
  EXPECT_EQ(m.completed, 5u);
  EXPECT_EQ(m.failed, 1u);
  EXPECT_EQ(m.restarts, 1u);
  EXPECT_EQ(m.retried, 0u);  // tasks that never started spend no attempt
}

TEST_F(PoolFault, TasksBehindACrashRunLaterAsTheirFirstAttempt) {
  PoolOptions options = crashy();
  options.pipeline_depth = 8;
  Pool pool(options);
  auto crash = pool.submit("segfault", "");
  std::vector<std::future<std::string>> behind;
  for (int i = 0; i < 3; ++i) behind.push_back(pool.submit("attempt", ""));
  EXPECT_EQ(kind_of(crash), Kind::WorkerCrashed);
  for (auto& f : behind) EXPECT_EQ(value_of(f), "1");
}

// ---------------------------------------------------------------------------------------------
// Timeouts

TEST_F(PoolFault, TimeoutKillsHungWorkerAndFailsTaskWithTimeout) {
  Pool pool(crashy());
  const int victim = pid_of(pool);
  TaskOptions timeout;
  timeout.timeout = 200ms;
  const auto submitted = Clock::now();
  auto hang = pool.submit("hang", "", timeout);
  const Outcome out = outcome_of(hang);
  ASSERT_TRUE(out.error) << out.describe();
  EXPECT_EQ(out.error->kind(), Kind::Timeout) << out.error->what();
  EXPECT_EQ(out.error->worker_pid(), victim);
  const std::string what = out.error->what();
  EXPECT_NE(what.find("timed out after 200 ms"), std::string::npos) << what;
  EXPECT_GE(Clock::now() - submitted, 200ms);

  const int successor = pid_of(pool);
  EXPECT_GT(successor, 0);
  EXPECT_NE(successor, victim);
  EXPECT_EQ(pool.metrics().restarts, 1u);
}

TEST_F(PoolFault, TimeoutWithTwoAttemptsRetriesOnceThenFailsTimeout) {
  Pool pool(crashy());
  const PoolMetrics before = pool.metrics();
  TaskOptions options;
  options.timeout = 200ms;
  options.max_attempts = 2;
  const auto submitted = Clock::now();
  auto hang = pool.submit("hang", "", options);
  const Outcome out = outcome_of(hang);
  ASSERT_TRUE(out.error) << out.describe();
  EXPECT_EQ(out.error->kind(), Kind::Timeout) << out.error->what();
  const std::string what = out.error->what();
  EXPECT_NE(what.find("all 2 attempts"), std::string::npos) << what;
  EXPECT_NE(what.find("timed out after 200 ms"), std::string::npos) << what;
  EXPECT_GE(Clock::now() - submitted, 400ms);  // two dispatches, each cut off at 200 ms

  const PoolMetrics after = pool.metrics();
  EXPECT_EQ(after.retried - before.retried, 1u);
  EXPECT_EQ(after.restarts - before.restarts, 2u);
  auto next = pool.submit("echo", "next");
  EXPECT_EQ(value_of(next), "next");
}

// ---------------------------------------------------------------------------------------------
// Cancellation

TEST_F(PoolFault, CancelledQueuedTaskFailsCancelledAndNeverRuns) {
  PoolOptions options = crashy();
  options.pipeline_depth = 1;  // the second task has to wait in the pool's queue
  Pool pool(options);
  auto busy = pool.submit("sleep", "500");

  auto cancel = std::make_shared<CancelSource>();
  auto queued = pool.submit("stderr", "the cancelled task ran\n", cancellable_by(cancel));
  EXPECT_EQ(pool.metrics().queued, 1u);
  cancel->cancel();
  const auto error = error_of(queued);
  ASSERT_TRUE(error);
  EXPECT_EQ(error->kind(), Kind::Cancelled) << error->what();
  EXPECT_EQ(error->worker_pid(), 0);  // no worker was involved
  EXPECT_EQ(value_of(busy), "slept");

  // Never dispatched: two dispatches in all (the sleep and this one).
  auto after = pool.submit("echo", "after");
  EXPECT_EQ(value_of(after), "after");
  EXPECT_EQ(pool.metrics().queue_wait.count, 2u);
  // Never ran: the worker's stderr (shown in a crash report) does not have its line.
  auto crash = pool.submit("segfault", "");
  const auto crash_error = error_of(crash);
  ASSERT_TRUE(crash_error);
  const std::string report = crash_error->what();
  EXPECT_EQ(report.find("the cancelled task ran"), std::string::npos) << report;
}

TEST_F(PoolFault, CancelledCooperativeRunningTaskResolvesPromptlyAndKeepsWorker) {
  PoolOptions options = crashy();
  options.cancel_grace = 60s;  // only the handler's own return can free the worker in time
  Pool pool(options);
  const int worker = pid_of(pool);

  auto cancel = std::make_shared<CancelSource>();
  auto sleeping = pool.submit("sleep", "10000", cancellable_by(cancel));
  // Running: the worker's main thread is in the handler's sleep (an idle worker waits on a
  // futex or yields instead).
  ASSERT_TRUE(poll_until([&] {
    const long call = current_syscall(worker);
    return call == SYS_clock_nanosleep || call == SYS_nanosleep;
  })) << "the sleep handler did not start";

  const auto cancelled_at = Clock::now();
  cancel->cancel();
  const Outcome out = outcome_of(sleeping);
  ASSERT_TRUE(out.error) << out.describe();
  EXPECT_EQ(out.error->kind(), Kind::Cancelled) << out.error->what();
  EXPECT_EQ(out.error->worker_pid(), worker);
  EXPECT_LT(Clock::now() - cancelled_at, scaled(1s));

  // The handler saw Task::cancelled() and returned: the same worker serves the next task, long
  // before the sleep's 10 s or cancel_grace.
  const int next = pid_of(pool);
  EXPECT_EQ(next, worker);
  EXPECT_LT(Clock::now() - cancelled_at, 3s);
  const PoolMetrics m = pool.metrics();
  EXPECT_EQ(m.restarts, 0u);
  EXPECT_EQ(m.workers.at(0).pid, worker);
}

TEST_F(PoolFault, CancelledHungTaskResolvesAtOnceAndWorkerIsReplacedAfterGrace) {
  PoolOptions options = crashy();
  options.cancel_grace = 200ms;
  Pool pool(options);
  const int worker = pid_of(pool);
  const std::uint64_t incarnation = slot_metrics(pool)->incarnation;

  auto cancel = std::make_shared<CancelSource>();
  Callbacks callbacks;
  pool.submit("hang", "", cancellable_by(cancel),
              [&callbacks](const TaskOutcome& o) { callbacks.record("hang", o); });
  ASSERT_TRUE(wait_until_spinning(worker)) << "the hang handler did not start";
  const auto cancelled_at = Clock::now();
  cancel->cancel();
  // At once: resolved by the time cancel() returns, not after the grace.
  EXPECT_EQ(callbacks.total(), 1u);
  callbacks.wait_for(1);
  const auto error = callbacks.error("hang");
  ASSERT_TRUE(error) << "the cancelled task succeeded";
  EXPECT_EQ(error->kind(), Kind::Cancelled) << error->what();
  EXPECT_EQ(error->worker_pid(), worker);

  // "hang" never looks at Task::cancelled(): after cancel_grace the worker is killed.
  ASSERT_TRUE(poll_until([&] { return replaced_since(pool, incarnation); }))
      << "the hung worker was not replaced";
  EXPECT_GE(Clock::now() - cancelled_at, 200ms);
  const int successor = pid_of(pool);
  EXPECT_NE(successor, worker);
  EXPECT_EQ(pool.metrics().restarts, 1u);
}

// A task dispatched behind a cancelled task that hangs never starts; when the worker is killed
// after cancel_grace, that task must go back to the queue (like any task that never started,
// docs/pool.md "Tasks on board"), not be failed as if it had been running.
TEST_F(PoolFault, TaskBehindCancelledHungTaskSurvivesTheGraceKill) {
  PoolOptions options = crashy();
  options.cancel_grace = 200ms;
  Pool pool(options);
  const int worker = pid_of(pool);

  auto cancel = std::make_shared<CancelSource>();
  auto hang = pool.submit("hang", "", cancellable_by(cancel));
  ASSERT_TRUE(wait_until_spinning(worker)) << "the hang handler did not start";
  cancel->cancel();
  EXPECT_EQ(kind_of(hang), Kind::Cancelled);

  // Dispatched at once onto the same (busy, hung) worker's pipeline.
  auto behind = pool.submit("pid", "");
  const Outcome out = outcome_of(behind);
  ASSERT_TRUE(out.value) << "the task behind the cancelled one failed: " << out.describe();
  EXPECT_NE(std::stoi(*out.value), worker);
}

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
  options.forward_stderr = false;  // the tail is still kept; the test's own output stays quiet
  options.pipeline_depth = 1;      // nothing queues behind the flood: the echoes go to the other
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

  PoolOptions options = crashy();
  options.forward_stderr = true;
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
  std::vector<std::future<std::string>> queued;
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
