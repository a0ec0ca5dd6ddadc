#pragma once

#include <chrono>              // std::chrono::milliseconds
#include <condition_variable>  // std::condition_variable
#include <mutex>               // std::mutex
#include <thread>              // std::thread

#include "procpool/worker_control.hpp"

namespace procpool::detail {

// The worker's heartbeat: a thread of its own stores CLOCK_MONOTONIC milliseconds into
// WorkerControl::heartbeat_ms once per interval, so a handler that runs for minutes does not look
// hung, while a process that is stopped or wedged as a whole does. Runs from construction to
// destruction.
class Heartbeat {
 public:
  Heartbeat(WorkerControl& control, std::chrono::milliseconds interval);
  Heartbeat(const Heartbeat&) = delete;
  Heartbeat& operator=(const Heartbeat&) = delete;
  ~Heartbeat();

 private:
  void beat();

  WorkerControl& control_;
  std::chrono::milliseconds interval_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stop_ = false;
  std::thread thread_;  // last: starts once the members it uses exist
};

}  // namespace procpool::detail
