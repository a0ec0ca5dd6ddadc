#pragma once

// Test support shared by the Pool tests that run real worker processes (tests/pool): the bounds
// and the per-test watchdog, bounded waits on pool futures and on completion callbacks, bounded
// polling, a pool kept busy by a blocker task, and the /proc readings the process-hygiene checks
// use.
//
// The rule these helpers enforce: every wait is bounded, and nothing sleeps to wait for an event.
//   - a pool future is waited for with wait_for(bound) before get() (outcome_of and the rest);
//     other work that may block runs on a std::async thread waited for with a bound (bounded);
//   - callbacks are awaited on a condition variable with a bound (Callbacks);
//   - a state the pool reaches by itself (a worker started, replaced or stopped) is polled with a
//     bound (poll_until), never assumed after a sleep;
//   - a per-test Watchdog bounds everything else (pool destructors included).
// Overrunning a bound aborts the process with a message naming the test and what overran, instead
// of hanging (CTest runs each TEST in its own process). Sleeping inside a worker handler ("sleep")
// is part of a scenario, not synchronisation.

#include <gtest/gtest.h>
#include <unistd.h>  // getpid

#include <chrono>              // durations
#include <condition_variable>  // std::condition_variable
#include <cstddef>             // std::size_t
#include <cstdio>              // std::fprintf
#include <cstdlib>             // std::abort
#include <filesystem>          // std::filesystem::directory_iterator
#include <fstream>             // std::ifstream (/proc/<pid>/stat)
#include <functional>          // std::function
#include <future>              // std::async, std::future
#include <map>                 // std::map
#include <memory>              // std::make_shared, std::shared_ptr
#include <mutex>               // std::mutex
#include <optional>            // std::optional
#include <set>                 // std::set
#include <sstream>             // std::istringstream
#include <string>              // std::string
#include <system_error>        // std::error_code
#include <thread>              // std::thread, std::this_thread::sleep_for
#include <utility>             // std::forward, std::move
#include <vector>              // std::vector

#include "procpool/pool.hpp"  // Pool, PoolOptions, TaskOptions, TaskError, TaskOutcome
#include "test_workers.hpp"   // small_pool

namespace procpool::test {

// Generous bound for anything that should be quick.
inline constexpr std::chrono::milliseconds kBound = std::chrono::seconds(20);

// Aborts the process with a message naming the current test and what did not finish in time.
[[noreturn]] inline void overran(const std::string& what, std::chrono::milliseconds bound) {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::fprintf(stderr, "FATAL: %s.%s: %s did not finish within %lld ms; aborting\n",
               info != nullptr ? info->test_suite_name() : "?",
               info != nullptr ? info->name() : "?", what.c_str(),
               static_cast<long long>(bound.count()));
  std::fflush(stderr);
  std::abort();
}

// Aborts the process if the test (pool destructors included) outlives `bound`.
class Watchdog {
 public:
  explicit Watchdog(std::chrono::milliseconds bound)
      : thread_([this, bound] {
          std::unique_lock lock(mutex_);
          if (!done_cv_.wait_for(lock, bound, [this] { return done_; })) overran("the test", bound);
        }) {}
  ~Watchdog() {
    {
      std::lock_guard lock(mutex_);
      done_ = true;
    }
    done_cv_.notify_all();
    thread_.join();
  }

 private:
  std::mutex mutex_;
  std::condition_variable done_cv_;
  bool done_ = false;
  std::thread thread_;
};

// Runs `fn` on its own thread and waits at most `bound` for it; returns its result or rethrows.
template <class F>
auto bounded(const std::string& what, F&& fn, std::chrono::milliseconds bound = kBound) {
  auto task = std::async(std::launch::async, std::forward<F>(fn));
  if (task.wait_for(bound) != std::future_status::ready) overran(what, bound);
  return task.get();
}

// What a pool future resolved to.
struct Outcome {
  std::optional<std::string> value;
  std::optional<TaskError> error;

  std::string describe() const {
    if (value) return "result \"" + value->substr(0, 80) + "\"";
    if (error) return std::string(to_string(error->kind())) + ": " + error->what();
    return "nothing";
  }
};

// get() on a pool future, bounded; never throws a TaskError (it is in the outcome).
inline Outcome outcome_of(procpool::Future<std::string>& future,
                          std::chrono::milliseconds bound = kBound) {
  if (future.wait_for(bound) != std::future_status::ready) overran("future.get()", bound);
  Outcome out;
  try {
    out.value = future.get();
  } catch (const TaskError& e) {
    out.error = e;
  }
  return out;
}

// The value of a future expected to succeed ("" and a test failure otherwise).
inline std::string value_of(procpool::Future<std::string>& future,
                            std::chrono::milliseconds bound = kBound) {
  const Outcome out = outcome_of(future, bound);
  EXPECT_TRUE(out.value.has_value()) << "expected a result, got " << out.describe();
  return out.value.value_or("");
}

// The error of a future expected to fail (nullopt and a test failure if it succeeded).
inline std::optional<TaskError> error_of(procpool::Future<std::string>& future,
                                         std::chrono::milliseconds bound = kBound) {
  const Outcome out = outcome_of(future, bound);
  EXPECT_TRUE(out.error.has_value()) << "expected a TaskError, got " << out.describe();
  return out.error;
}

// The kind of error of a future expected to fail (nullopt and a test failure if it succeeded).
inline std::optional<TaskError::Kind> kind_of(procpool::Future<std::string>& future,
                                              std::chrono::milliseconds bound = kBound) {
  const std::optional<TaskError> error = error_of(future, bound);
  if (!error) return std::nullopt;
  return error->kind();
}

// Polls `predicate` until it holds or `bound` passes (for states the pool reaches on its own,
// e.g. a dead worker replaced). Returns whether it held.
inline bool poll_until(const std::function<bool()>& predicate,
                       std::chrono::milliseconds bound = std::chrono::seconds(10)) {
  const auto deadline = std::chrono::steady_clock::now() + bound;
  while (!predicate()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    // The poll interval, not a synchronisation.
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

// Task options whose cancellation source is `cancel`.
inline TaskOptions cancellable_by(std::shared_ptr<CancelSource> cancel) {
  TaskOptions options;
  options.cancel = std::move(cancel);
  return options;
}

// Collects completion callbacks: how many ran, and per key how many, with what outcome and in
// which order; waits (bounded) for a number of them.
class Callbacks {
 public:
  // Counts a callback that keeps its own results.
  void add() {
    record_locked([] {});
  }

  // Records a callback for the task `key`: its outcome, and its place in order().
  void record(const std::string& key, const TaskOutcome& outcome) {
    record_locked([&] {
      ++calls_[key];
      if (outcome.ok()) {
        values_[key] = std::string(outcome.value());
      } else {
        errors_.emplace(key, *outcome.error());
      }
      order_.push_back(
          outcome.ok() && outcome.value() == key
              ? key
              : key + ":error(" +
                    std::string(outcome.ok() ? outcome.value() : outcome.error()->what()) + ")");
    });
  }

  // A completion callback that records under `key`.
  auto recorder(std::string key) {
    return [this, key = std::move(key)](const TaskOutcome& o) { record(key, o); };
  }

  // Waits (bounded) until `n` callbacks ran in all; returns order().
  std::vector<std::string> wait_for(std::size_t n, std::chrono::milliseconds bound = kBound) {
    std::unique_lock lock(mutex_);
    if (!changed_.wait_for(lock, bound, [&] { return total_ >= n; })) {
      overran("waiting for " + std::to_string(n) + " completion callbacks", bound);
    }
    return order_;
  }

  // How many callbacks ran in all.
  std::size_t total() const {
    std::lock_guard lock(mutex_);
    return total_;
  }

  // How many callbacks ran for `key`.
  int calls(const std::string& key) const {
    std::lock_guard lock(mutex_);
    const auto it = calls_.find(key);
    return it == calls_.end() ? 0 : it->second;
  }

  // The result the callback for `key` got, if it got one.
  std::optional<std::string> value(const std::string& key) const {
    std::lock_guard lock(mutex_);
    const auto it = values_.find(key);
    if (it == values_.end()) return std::nullopt;
    return it->second;
  }

  // The error the callback for `key` got, if it got one.
  std::optional<TaskError> error(const std::string& key) const {
    std::lock_guard lock(mutex_);
    const auto it = errors_.find(key);
    if (it == errors_.end()) return std::nullopt;
    return it->second;
  }

  // The recorded callbacks in the order they ran: the key where the result was the key itself
  // (an echo of it), "key:error(what it got instead)" otherwise.
  std::vector<std::string> order() const {
    std::lock_guard lock(mutex_);
    return order_;
  }

 private:
  // Runs `update` under the lock, counts one callback and wakes the waiters. The notify stays
  // under the lock: the waiter that sees the last callback counted may return and destroy this
  // object (tests keep it on the stack), so the callback thread must be done with changed_ before
  // it releases mutex_ (ThreadSanitizer caught pthread_cond_destroy racing the broadcast).
  template <class F>
  void record_locked(F&& update) {
    std::lock_guard lock(mutex_);
    update();
    ++total_;
    changed_.notify_all();
  }

  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::size_t total_ = 0;
  std::map<std::string, int> calls_;
  std::map<std::string, std::string> values_;
  std::map<std::string, TaskError> errors_;
  std::vector<std::string> order_;
};

// A pool whose one worker is busy on a long "sleep" until release() cancels it: until then the
// pool queue holds exactly what the test submits. That is the default adaptive depth's doing: a
// fresh worker takes one task until it has answered one, and nothing waits behind a task that
// runs far longer than measured.
class BlockedPool {
 public:
  explicit BlockedPool(PoolOptions options = small_pool("crashy", 1)) {
    pool_.emplace(options);
    blocker_ = pool_->submit("sleep", "30000", cancellable_by(cancel_));
  }
  // A test that stopped early must not leave the pool's shutdown waiting for the blocker.
  ~BlockedPool() { cancel_->cancel(); }

  Pool& pool() { return *pool_; }

  // Ends the blocker (the worker sees Task::cancelled() within a millisecond); the worker then
  // takes the queued tasks one by one.
  void release() {
    cancel_->cancel();
    const auto error = error_of(blocker_);
    ASSERT_TRUE(error);
    EXPECT_EQ(error->kind(), TaskError::Kind::Cancelled) << error->what();
  }

 private:
  std::shared_ptr<CancelSource> cancel_ = std::make_shared<CancelSource>();
  std::optional<Pool> pool_;
  procpool::Future<std::string> blocker_;
};

// The names in a directory (an empty set if it cannot be read).
inline std::set<std::string> directory_entries(const std::string& path) {
  std::set<std::string> out;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(path, ec)) {
    out.insert(entry.path().filename().string());
  }
  return out;
}

// "state ppid" of a process from /proc/<pid>/stat (the command name may hold spaces and ')').
inline bool read_state_and_ppid(const std::string& pid, char& state, long& ppid) {
  std::ifstream in("/proc/" + pid + "/stat");
  std::string line;
  if (!std::getline(in, line)) return false;
  const auto close = line.rfind(')');
  if (close == std::string::npos || close + 2 >= line.size()) return false;
  std::istringstream rest(line.substr(close + 2));
  return static_cast<bool>(rest >> state >> ppid);
}

// Our child processes, zombies included, as "pid (state S)". /proc lists processes, not threads,
// so the pool's and the test's threads do not show up.
inline std::vector<std::string> child_processes() {
  std::vector<std::string> out;
  const long self = ::getpid();
  for (const std::string& name : directory_entries("/proc")) {
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    char state = '?';
    long ppid = 0;
    if (read_state_and_ppid(name, state, ppid) && ppid == self) {
      out.push_back(name + " (state " + state + ")");
    }
  }
  return out;
}

}  // namespace procpool::test
