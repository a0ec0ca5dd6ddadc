#pragma once

#include <atomic>              // the serving thread asleep
#include <chrono>              // std::chrono::milliseconds
#include <condition_variable>  // std::condition_variable
#include <cstdint>             // std::uint32_t
#include <mutex>               // std::mutex
#include <thread>              // std::thread

#include "procpool/worker_control.hpp"

namespace procpool::detail {

// The worker's heartbeat: a thread of its own stores CLOCK_MONOTONIC milliseconds into
// WorkerControl::heartbeat_ms once per interval while the worker serves, so a handler that runs
// for minutes does not look hung, while a process that is stopped or wedged as a whole does.
// While the serving thread sleeps for frames it sleeps too (an idle worker costs no wake-ups;
// the supervisor checks heartbeats only of workers with tasks on board), and it beats again as
// soon as the serving thread wakes. Runs from construction to destruction, with the stop
// signals blocked, so they always interrupt the serving thread's sleep.
class Heartbeat {
 public:
  Heartbeat(WorkerControl& control, std::chrono::milliseconds interval);
  Heartbeat(const Heartbeat&) = delete;
  Heartbeat& operator=(const Heartbeat&) = delete;
  ~Heartbeat();

  // The serving thread is about to sleep for frames. No system call.
  void idle() noexcept { asleep_.store(1, std::memory_order_relaxed); }
  // The serving thread is awake again: beats resume now. A system call only if the heartbeat
  // thread had gone to sleep (at most once per interval, see beat()).
  void awake() noexcept {
    if (asleep_.exchange(0, std::memory_order_relaxed) == 1) asleep_.notify_one();
  }

 private:
  void beat();

  WorkerControl& control_;
  std::chrono::milliseconds interval_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stop_ = false;
  std::atomic<std::uint32_t> asleep_{0};
  std::thread thread_;  // last: starts once the members it uses exist
};

}  // namespace procpool::detail
