#pragma once

// Support shared by the restart-policy tests of procpool::Pool (pool_restart_test,
// pool_spawn_test, pool_restart_events_test): pools at default options, a log of the life-cycle
// events with bounded waits on them, a slot's metrics, killing a worker, and a serving check.

#include <gtest/gtest.h>
#include <signal.h>  // kill, SIGKILL

#include <chrono>              // durations
#include <condition_variable>  // std::condition_variable
#include <cstddef>             // std::size_t
#include <functional>          // std::function
#include <future>              // std::future
#include <mutex>               // std::mutex
#include <optional>            // std::optional
#include <string>              // std::string
#include <vector>              // std::vector

#include "pool_test_support.hpp"  // value_of, kBound
#include "procpool/pool.hpp"
#include "procpool/pool_event.hpp"
#include "test_workers.hpp"  // worker_path

namespace procpool::test {

// `workers` example workers `name`, every other option at its default.
inline PoolOptions pool_of(const std::string& name, unsigned workers) {
  PoolOptions options;
  options.executable = worker_path(name);
  options.min_workers = workers;
  options.max_workers = workers;
  return options;
}

// Every life-cycle event the pool reported, with when it was seen; bounded waits on them.
class EventLog {
 public:
  struct Seen {
    PoolEvent event;
    std::chrono::steady_clock::time_point at;
  };

  void record(const PoolEvent& event) {
    const auto at = std::chrono::steady_clock::now();
    std::lock_guard lock(mutex_);
    seen_.push_back({event, at});
    changed_.notify_all();
  }

  // The pool's on_event. The log must outlive the pool (declare it first).
  std::function<void(const PoolEvent&)> callback() {
    return [this](const PoolEvent& event) { record(event); };
  }

  // Waits (bounded) for an event at index `from` or later that `match` accepts; its index.
  std::optional<std::size_t> wait_for(const std::function<bool(const PoolEvent&)>& match,
                                      std::size_t from = 0,
                                      std::chrono::milliseconds bound = kBound) {
    std::unique_lock lock(mutex_);
    std::optional<std::size_t> found;
    changed_.wait_for(lock, bound, [&] {
      for (std::size_t i = from; i < seen_.size(); ++i) {
        if (match(seen_[i].event)) {
          found = i;
          return true;
        }
      }
      return false;
    });
    return found;
  }

  std::size_t size() const {
    std::lock_guard lock(mutex_);
    return seen_.size();
  }

  std::vector<Seen> seen() const {
    std::lock_guard lock(mutex_);
    return seen_;
  }

  // "kind(slot)" for every event from `from` on, for failure messages.
  std::string describe(std::size_t from = 0) const {
    std::lock_guard lock(mutex_);
    std::string out;
    for (std::size_t i = from; i < seen_.size(); ++i) {
      out += std::string(to_string(seen_[i].event.kind)) + "(" +
             std::to_string(seen_[i].event.slot) + ") ";
    }
    return out;
  }

 private:
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<Seen> seen_;
};

inline auto is(PoolEvent::Kind kind, unsigned slot) {
  return [kind, slot](const PoolEvent& e) { return e.kind == kind && e.slot == slot; };
}

// The same, of a later incarnation of the slot than `incarnation`. A mark taken with
// EventLog::size() does not exclude the old one's events: they are delivered on the pool's
// thread after the state they report, so the first WorkerReady may come after the mark.
inline auto is_after(PoolEvent::Kind kind, unsigned slot, std::uint64_t incarnation) {
  return [kind, slot, incarnation](const PoolEvent& e) {
    return e.kind == kind && e.slot == slot && e.incarnation > incarnation;
  };
}

// The metrics of `slot`'s worker (a default WorkerMetrics if the slot is empty).
inline WorkerMetrics worker_in(const Pool& pool, unsigned slot) {
  for (const WorkerMetrics& w : pool.metrics().workers) {
    if (w.slot == slot) return w;
  }
  return {};
}

// SIGKILLs a worker by the pid metrics() gave (still the pool's unreaped child, so the pid is
// that worker's).
inline void kill_worker(int pid) {
  ASSERT_GT(pid, 0);
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
}

// `count` echo tasks through the pool, each expected back as itself.
inline void expect_serves(Pool& pool, int count, const std::string& tag) {
  std::vector<procpool::Future<std::string>> futures;
  for (int i = 0; i < count; ++i) futures.push_back(pool.submit("echo", tag + std::to_string(i)));
  int ok = 0;
  for (int i = 0; i < count; ++i) ok += value_of(futures[i]) == tag + std::to_string(i);
  EXPECT_EQ(ok, count) << tag;
}

}  // namespace procpool::test
