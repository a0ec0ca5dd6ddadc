#include "heartbeat.hpp"

#include <pthread.h>  // pthread_sigmask
#include <signal.h>   // SIGTERM, SIGINT, SIGHUP

#include "process_setup.hpp"

namespace procpool::detail {
namespace {

// Started with the stop signals blocked (a new thread inherits the mask), so that the kernel
// delivers them to the serving thread, whose sleep for frames they must interrupt.
std::thread start_without_stop_signals(Heartbeat* heartbeat, void (Heartbeat::*body)()) {
  sigset_t stop_signals, old_mask;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGHUP);
  ::pthread_sigmask(SIG_BLOCK, &stop_signals, &old_mask);
  std::thread thread(body, heartbeat);
  ::pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  return thread;
}

}  // namespace

Heartbeat::Heartbeat(WorkerControl& control, std::chrono::milliseconds interval)
    : control_(control),
      interval_(interval),
      thread_(start_without_stop_signals(this, &Heartbeat::beat)) {}

Heartbeat::~Heartbeat() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  asleep_.store(0, std::memory_order_relaxed);
  asleep_.notify_all();
  thread_.join();
}

// A full interval between beats, always; only a serving thread found asleep at the end of one
// puts this thread to sleep until it wakes. So awake() makes a system call at most once per
// interval, however often the serving thread dozes off between tasks.
void Heartbeat::beat() {
  std::unique_lock lock(mutex_);
  while (!stop_) {
    control_.heartbeat_ms.store(monotonic_ms(), std::memory_order_relaxed);
    wake_.wait_for(lock, interval_);
    if (stop_) break;
    if (asleep_.load(std::memory_order_relaxed) == 1) {
      // Until awake() or the destructor (which clears it, so a wait begun after that returns).
      lock.unlock();
      asleep_.wait(1, std::memory_order_relaxed);
      lock.lock();
    }
  }
}

}  // namespace procpool::detail
