#include "pool_core.hpp"

#include <pthread.h>    // pthread_sigmask
#include <sched.h>      // sched_yield
#include <signal.h>     // SIGPIPE
#include <sys/epoll.h>  // epoll_wait

#include <algorithm>  // std::min
#include <chrono>     // durations

#include "epoll_tags.hpp"
#include "procpool/wait_strategy.hpp"

namespace procpool::detail {
using State = WorkerSlot::State;
using std::chrono::milliseconds;

// Whatever the timers say, the longest the thread sleeps (an epoll timeout is an int of ms).
constexpr milliseconds kLongestSleep = std::chrono::hours(1);

void PoolCore::run_loop() {
  // The output sinks write to fds that may be pipes whose reader is gone (the host's stderr,
  // say): on this thread that is EPIPE, never a SIGPIPE that kills the host. Workers start
  // with an empty mask (launcher.cpp).
  sigset_t pipe;
  sigemptyset(&pipe);
  sigaddset(&pipe, SIGPIPE);
  ::pthread_sigmask(SIG_BLOCK, &pipe, nullptr);
  std::unique_lock lock(mu_);
  for (unsigned i = 0; i < min_workers_; ++i) {
    spawn_locked(slots_[i]);
    if (failure_) break;
  }
  epoll_event events[64];
  Clock::time_point spin_until{};
  while (true) {
    const auto now = Clock::now();
    drain_all_locked();
    const Clock::time_point next_timer = std::min(timers_locked(now), autoscale_locked(now));
    dispatch_locked();
    publish_all_locked();
    if (running_ == 0 && queue_.empty()) changed_.notify_all();
    const bool had_deliveries = !deliveries_.empty();
    deliver(lock);
    flush_events(lock);
    if (stopping_ && live_slots_locked() == 0 && queue_.empty() && running_ == 0) {
      bool backoff = false;
      for (const WorkerSlot& slot : slots_) backoff |= slot.state() == State::kBackoff;
      if (!backoff) break;
    }
    if (had_deliveries) {
      spin_until = Clock::now() + WaitPolicy::kDefaultSpin;
      continue;
    }

    // Decide how to sleep. While tasks are on board and results are flowing, spin a little on
    // the rings (cheaper than a doorbell and a wake-up per batch).
    const bool busy = running_ != 0 && answers_soon_locked();
    if (busy && Clock::now() < spin_until && pollers_.load(std::memory_order_acquire) == 0) {
      lock.unlock();
      // Never sleeps on the mutex here: a submitter or a waiter holding it is working the
      // rings meanwhile, and a sleeper would cost it a futex wake at its unlock. Only once the
      // spin is over does this thread wait for the mutex (to decide how to sleep).
      // While another thread holds it, the CPU goes to whoever else can run (the workers, the
      // submitter): there are often more of them than CPUs.
      bool held_elsewhere = false;
      do {
        if (held_elsewhere) {
          ::sched_yield();
        } else {
          for (int i = 0; i < 32; ++i) cpu_relax();
        }
        held_elsewhere = true;
      } while (!lock.try_lock() && Clock::now() < spin_until);
      if (!lock.owns_lock()) lock.lock();
      continue;
    }
    // Deadlines other threads set after the timers were computed (deliver() and the event
    // callbacks above ran without the lock) count too.
    const Clock::time_point wake_at = std::min(next_timer, external_deadline_);
    external_deadline_ = Clock::time_point::max();
    auto timeout = std::chrono::ceil<milliseconds>(wake_at - Clock::now());
    if (timeout.count() < 0) timeout = milliseconds(0);
    timeout = std::min(timeout, kLongestSleep);
    // Announce that we sleep on every live worker's result ring (and on the task rings that
    // wait for room), so a worker that publishes rings the doorbell; then re-check the rings,
    // the announcement's other half (see EventCount).
    const bool announce = pollers_.load(std::memory_order_acquire) == 0;
    std::vector<EventCount*>& announced = announced_;
    announced.clear();
    if (announce) {
      for (WorkerSlot& slot : slots_) {
        if (!slot.live() || !slot.channel) continue;
        slot.channel->published_event().prepare_wait();
        announced.push_back(&slot.channel->published_event());
        if (slot.writing_task() != WorkerSlot::kNoTask) {
          slot.channel->released_event().prepare_wait();
          announced.push_back(&slot.channel->released_event());
        }
      }
    } else {
      // Pollers drain the rings; look again soon in case they stop.
      timeout = std::min(timeout, milliseconds(1));
    }
    bool ready_now = false;
    for (WorkerSlot& slot : slots_) {
      // A killed worker's rings may stay faulted ("ready") until it is reaped, and only
      // epoll_wait below sees its pidfd: do not let them keep this thread from sleeping.
      if (!slot.live() || !slot.channel || slot.process.killed) continue;
      if (slot.channel->readable()) ready_now = true;
      const std::uint32_t writing = slot.writing_task();
      if (writing != WorkerSlot::kNoTask &&
          slot.channel->writable(as_bytes(tasks_[writing].payload))) {
        ready_now = true;
      }
    }
    int count = 0;
    if (!ready_now) {
      planned_wake_ = Clock::now() + timeout;
      lock.unlock();
      close_outputs();
      count = ::epoll_wait(epoll_fd_.get(), events, 64, static_cast<int>(timeout.count()));
      // The workers' output first, still without mu_ (the sinks run outside it), and before
      // an exit in the same batch is handled, so the crash report has the last words.
      for (int i = 0; i < count; ++i) {
        const std::uint64_t kind = events[i].data.u64 & kEpollKindMask;
        const auto slot_index = static_cast<std::size_t>(events[i].data.u64 & 0xFFFFFFFFu);
        if ((kind == kEpollStdout || kind == kEpollStderr || kind == kEpollPidfd) &&
            slot_index < slots_.size()) {
          read_outputs(slots_[slot_index]);
        }
      }
      lock.lock();
      planned_wake_ = Clock::time_point::min();
    }
    for (EventCount* event : announced) event->cancel_wait();
    spin_until = Clock::now() + WaitPolicy::kDefaultSpin;
    for (int i = 0; i < count; ++i) {
      const std::uint64_t tag = events[i].data.u64;
      const auto slot_index = static_cast<std::size_t>(tag & 0xFFFFFFFFu);
      switch (tag & kEpollKindMask) {
        case kEpollDoorbell:
          if (slot_index < slots_.size()) doorbell_locked(slots_[slot_index]);
          break;
        case kEpollKick:
          drain_eventfd(kick_fd_.get());
          break;
        case kEpollStdout:
        case kEpollStderr:
          break;  // read above
        case kEpollPidfd:
          if (slot_index < slots_.size() && slots_[slot_index].process.has_process()) {
            drain_all_locked();  // results published before the exit still count
            reap(slots_[slot_index]);
          }
          break;
      }
    }
  }
  // Whatever is left (the grace ran out) fails; the workers are gone.
  queue_.drain([&](std::uint32_t index) {
    resolve_locked(index, {}, TaskError(TaskError::Kind::ShuttingDown, "pool shut down"));
    free_task_locked(index);
  });
  lock.unlock();
  close_outputs();
  lock.lock();
  stopped_ = true;
  changed_.notify_all();
  deliver(lock);
}

}  // namespace procpool::detail
