#include "pool_core.hpp"

#include <pthread.h>    // pthread_sigmask
#include <sched.h>      // sched_yield
#include <signal.h>     // SIGPIPE
#include <sys/epoll.h>  // epoll_wait, epoll_pwait2
#include <time.h>       // timespec

#include <algorithm>  // std::min
#include <chrono>     // durations

#include "epoll_tags.hpp"
#include "procpool/wait_strategy.hpp"

namespace procpool::detail {
using State = WorkerSlot::State;
using std::chrono::milliseconds;

// Whatever the timers say, the longest the thread sleeps (an epoll timeout is an int of ms).
constexpr milliseconds kLongestSleep = std::chrono::hours(1);
// How long the thread steps aside for callers at most before it takes mu_ for a full pass
// (the timers, deadlines other threads set, the autoscaler), whatever the callers do.
constexpr std::chrono::microseconds kAsideBound{2000};

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
  epoll_event events[kMaxEvents];
  Clock::time_point spin_until{};
  while (true) {
    const auto now = Clock::now();
    const std::uint32_t turns_at_top = caller_turns_.load(std::memory_order_relaxed);
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
    // A caller that took mu_ while this pass had it released (deliver) is driving the pool.
    std::uint32_t seen_turns = turns_at_top;
    if (had_deliveries) {
      spin_until = Clock::now() + WaitPolicy::kDefaultSpin;
      if (caller_turns_.load(std::memory_order_relaxed) == seen_turns) continue;
    }

    // Decide how to sleep. While tasks are on board and results are flowing, spin a little on
    // the rings (cheaper than a doorbell and a wake-up per batch), or step aside for callers.
    const bool busy = running_ != 0 && answers_soon_locked();
    if (busy && Clock::now() < spin_until && pollers_.load(std::memory_order_acquire) == 0) {
      const Clock::time_point aside_until = std::min(next_timer, Clock::now() + kAsideBound);
      lock.unlock();
      // Never sleeps on the mutex here: a submitter or a waiter holding it is working the
      // rings meanwhile, and a sleeper would cost it a futex wake at its unlock. Only once the
      // spin is over does this thread wait for the mutex (to decide how to sleep).
      // While another thread holds it, the CPU goes to whoever else can run (the workers, the
      // submitter): there are often more of them than CPUs.
      bool held_elsewhere = false;
      int count = 0;
      do {
        const std::uint32_t turns = caller_turns_.load(std::memory_order_relaxed);
        if (turns != seen_turns && Clock::now() < aside_until) {
          // A caller took mu_ since this thread last looked: nap rather than spin, then one
          // try for mu_ (the while below). A pass per nap hands the callers' undrained answers
          // out within a nap of their stopping, and leaves them mu_ and the CPU the rest of it.
          seen_turns = turns;
          count = nap(events);
          if (count != 0) break;  // an exit, a kick, output: handled below
          spin_until = Clock::now() + WaitPolicy::kDefaultSpin;
          held_elsewhere = false;
          continue;
        }
        if (held_elsewhere) {
          ::sched_yield();
        } else {
          for (int i = 0; i < 32; ++i) cpu_relax();
        }
        held_elsewhere = true;
      } while (!lock.try_lock() && Clock::now() < spin_until);
      if (!lock.owns_lock()) lock.lock();
      if (count > 0) handle_events_locked(events, count);
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
        // A held ring (progress backlog) is read again on the kick that ends the hold: no
        // doorbell per publish meanwhile.
        if (!ring_held(slot)) {
          slot.channel->published_event().prepare_wait();
          announced.push_back(&slot.channel->published_event());
        }
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
      if (slot.channel->readable() && !ring_held(slot)) ready_now = true;
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
      count = ::epoll_wait(epoll_fd_.get(), events, kMaxEvents, static_cast<int>(timeout.count()));
      read_event_outputs(events, count);
      lock.lock();
      planned_wake_ = Clock::time_point::min();
    }
    for (EventCount* event : announced) event->cancel_wait();
    spin_until = Clock::now() + WaitPolicy::kDefaultSpin;
    handle_events_locked(events, count);
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

int PoolCore::nap(epoll_event* events) {
  const timespec timeout{0, std::chrono::nanoseconds(kCallerNap).count()};
  const int count = ::epoll_pwait2(epoll_fd_.get(), events, kMaxEvents, &timeout, nullptr);
  read_event_outputs(events, count);
  return count < 0 ? 0 : count;
}

void PoolCore::read_event_outputs(const epoll_event* events, int count) {
  // The workers' output first, still without mu_ (the sinks run outside it), and before an
  // exit in the same batch is handled, so the crash report has the last words.
  for (int i = 0; i < count; ++i) {
    const std::uint64_t kind = events[i].data.u64 & kEpollKindMask;
    const auto slot_index = static_cast<std::size_t>(events[i].data.u64 & 0xFFFFFFFFu);
    if ((kind == kEpollStdout || kind == kEpollStderr || kind == kEpollPidfd) &&
        slot_index < slots_.size()) {
      read_outputs(slots_[slot_index]);
    }
  }
}

void PoolCore::handle_events_locked(const epoll_event* events, int count) {
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
        break;  // read by read_event_outputs
      case kEpollPidfd:
        if (slot_index < slots_.size() && slots_[slot_index].process.has_process()) {
          // Results published before the exit still count, a progress backlog or not.
          if (slots_[slot_index].channel && slots_[slot_index].live()) {
            drain_slot_locked(slots_[slot_index], false);
          }
          drain_all_locked();
          reap(slots_[slot_index]);
        }
        break;
    }
  }
}

}  // namespace procpool::detail
