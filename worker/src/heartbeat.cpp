#include "heartbeat.hpp"

#include "process_setup.hpp"

namespace procpool::detail {

Heartbeat::Heartbeat(WorkerControl& control, std::chrono::milliseconds interval)
    : control_(control), interval_(interval), thread_([this] { beat(); }) {}

Heartbeat::~Heartbeat() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

void Heartbeat::beat() {
  std::unique_lock lock(mutex_);
  while (!stop_) {
    control_.heartbeat_ms.store(monotonic_ms(), std::memory_order_relaxed);
    wake_.wait_for(lock, interval_);
  }
}

}  // namespace procpool::detail
