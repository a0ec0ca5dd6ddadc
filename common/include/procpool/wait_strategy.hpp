#pragma once
#include "procpool/detail/require_cxx20.hpp"

#include <sched.h>  // sched_yield

#include <chrono>   // std::chrono::steady_clock
#include <cstdint>  // std::uint32_t

#include "procpool/event_count.hpp"

namespace procpool {

// How long a waiter spins on the condition before it sleeps on the futex.
//
// Waking a sleeping process on the other CPU costs about 20 µs on our 2-vCPU machines, so a round
// trip between two sleepers costs about 45 µs whatever the mechanism. Spinning a little longer
// than that wake cost keeps a busy conversation out of the kernel entirely; a 3 µs spin was
// measured bimodal (p99 30 µs), 20 µs was not (docs/workloads.md). Idle means asleep: once the
// budget is spent the waiter sleeps and costs no CPU. The part of the spin that never yields the
// CPU.
inline constexpr std::chrono::nanoseconds kPureSpin = std::chrono::microseconds(5);

struct WaitPolicy {
  static constexpr std::chrono::nanoseconds kDefaultSpin = std::chrono::microseconds(50);
  std::chrono::nanoseconds spin = kDefaultSpin;
};

// One PAUSE: tells the core we are spinning, so the sibling hyperthread and the power budget
// are not wasted, and leaving the loop does not pay a memory-order mis-speculation.
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

// Waits until `ready()` returns true: spins for `policy.spin`, then sleeps on `event` until it is
// notified, re-checking `ready()` each time, for at most `timeout` in all. `ready` must be cheap
// and must re-load the shared condition it tests (acquire).
template <class Ready>
WaitResult wait_until(EventCount& event, Ready&& ready, WaitPolicy policy,
                      std::chrono::nanoseconds timeout) {
  using Clock = std::chrono::steady_clock;
  // A peer that is mid-batch usually answers within a few polls: try those before paying for a
  // clock read.
  for (int i = 0; i < 16; ++i) {
    if (ready()) return WaitResult::kReady;
    cpu_relax();
  }
  const auto start = Clock::now();
  const auto deadline = start + timeout;
  const auto spin_until = start + (policy.spin < timeout ? policy.spin : timeout);
  const auto yield_after = start + kPureSpin;
  // Read the clock only every few iterations: a PAUSE is 10–140 cycles, a clock read ~20 ns.
  // After the first few microseconds, yield between polls: with more runnable processes than
  // CPUs (a supervisor and two workers on two cores), a pure spin would take the CPU from the
  // very process we wait for; with a free CPU, sched_yield returns at once.
  bool yielding = false;
  for (std::uint32_t i = 1;; ++i) {
    if (ready()) return WaitResult::kReady;
    if (yielding) {
      ::sched_yield();
    } else {
      cpu_relax();
    }
    if ((i & 7U) == 0) {
      const auto now = Clock::now();
      if (now >= spin_until) break;
      yielding = now >= yield_after;
    }
  }
  for (;;) {
    const EventCount::Key key = event.prepare_wait();
    if (ready()) {
      event.cancel_wait();
      return WaitResult::kReady;
    }
    const auto now = Clock::now();
    if (now >= deadline) {
      event.cancel_wait();
      return WaitResult::kTimedOut;
    }
    event.wait(key, deadline - now);
  }
}

}  // namespace procpool
