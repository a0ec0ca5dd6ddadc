#pragma once
#include "procpool/detail/require_cxx20.hpp"

#include <atomic>   // std::atomic
#include <chrono>   // std::chrono::nanoseconds
#include <cstdint>  // std::uint32_t

namespace procpool {

enum class WaitResult : std::uint8_t {
  kReady,     // the condition held (or the peer notified: callers re-check it)
  kTimedOut,  // the bound elapsed; the caller decides whether the peer is still alive
};

// A cross-process eventcount (after folly/synchronization/EventCount.h), living in shared memory.
// It turns "re-check a lock-free condition, then sleep" into a race-free sleep with no lock that a
// dying process could leave held.
//
// Waiter (one side of an SPSC ring):
//     auto key = ec.prepare_wait();     // announce: waiters_ += 1, then read the epoch
//     if (condition()) { ec.cancel_wait(); return; }
//     ec.wait(key, timeout);            // sleeps only while the epoch is still `key`
// Notifier:
//     publish the change (release store); ec.notify();
//
// Why no wake-up is lost (a store-buffering pair): the waiter's RMW on waiters_ is followed by a
// seq_cst fence and its re-check of the condition; the notifier's publishing store is followed by
// a seq_cst fence and its load of waiters_. So either the notifier sees waiters_ > 0 (and bumps the
// epoch and wakes), or the waiter's re-check sees the published change. A bump that lands between
// the waiter's epoch read and its futex_wait makes the kernel return at once (value changed).
//
// Shared-memory contract: both fields are written by both sides (waiter: waiters_; notifier:
// epoch_). A peer that scribbles on them can only cause extra wake-ups (spurious, re-checked) or a
// missed one, which every bounded wait turns into a timeout; never a crash or a hang.
class EventCount {
 public:
  using Key = std::uint32_t;

  EventCount() noexcept = default;
  EventCount(const EventCount&) = delete;
  EventCount& operator=(const EventCount&) = delete;

  // Announces a waiter and returns the epoch to pass to wait(). Must be followed by exactly one
  // of cancel_wait() or wait().
  Key prepare_wait() noexcept {
    waiters_.fetch_add(1, std::memory_order_seq_cst);
    // SYNC POINT: orders our announcement before the caller's re-check of its condition; pairs
    // with the fence in notify().
    std::atomic_thread_fence(std::memory_order_seq_cst);
    return epoch_.load(std::memory_order_acquire);
  }

  void cancel_wait() noexcept { waiters_.fetch_sub(1, std::memory_order_relaxed); }

  // Sleeps until notify() moves the epoch past `key`, a signal handler runs, or `timeout`
  // elapses. Removes the waiter announced by prepare_wait() in every case. Spurious returns are
  // possible (kReady after a signal, so a stop flag set by a handler is seen): re-check.
  WaitResult wait(Key key, std::chrono::nanoseconds timeout) noexcept;

  // Wakes every waiter if there is one. Costs one fence and one load when nobody sleeps.
  // Returns true if a waiter was announced: a peer that waits through another channel (the
  // supervisor sleeps in epoll, not on the futex) must then be signalled there too.
  bool notify() noexcept {
    // SYNC POINT: orders the caller's publishing store before our read of waiters_; pairs with
    // the fence in prepare_wait().
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (waiters_.load(std::memory_order_relaxed) != 0) [[unlikely]] {
      wake_all();
      return true;
    }
    return false;
  }

  // The number of announced waiters (for tests and diagnostics).
  std::uint32_t waiters() const noexcept { return waiters_.load(std::memory_order_relaxed); }

 private:
  void wake_all() noexcept;

  // Bumped by the notifier; the futex word waiters sleep on.
  std::atomic<std::uint32_t> epoch_{0};
  // Waiters announced and not yet gone; written by the waiting side only (in an SPSC ring, one).
  std::atomic<std::uint32_t> waiters_{0};
};

static_assert(sizeof(EventCount) == 8, "EventCount is part of the shared-memory layout");
static_assert(std::atomic<std::uint32_t>::is_always_lock_free,
              "shared memory may only hold lock-free atomics: a lock would die with its holder");

}  // namespace procpool
