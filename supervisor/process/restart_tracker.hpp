#pragma once

#include <algorithm>  // std::min
#include <chrono>     // durations
#include <cstdint>    // std::uint64_t

#include "procpool/restart_policy.hpp"

namespace procpool::detail {

// Why a slot's process ended, as far as the restart policy cares. Only kBroken says anything
// about the program itself; a death with tasks on board is the running task's problem (its
// attempts decide), and a death after a stable run is an accident: both restart at once.
enum class DeathKind : std::uint8_t {
  kBroken,    // exited before READY, failed to spawn, or died idle right after READY without
              // answering a task
  kBusy,      // died with tasks on board (the one running was charged an attempt for it),
              // or after answering a task
  kStable,    // died after being READY for at least RestartPolicy::min_uptime
  kIntended,  // stopped by us (recycling, scale-down, shutdown) or killed for a task's sake
};

// The restart policy of one slot, in one place: how many broken starts in a row, when to
// restart, when the slot counts as crash-looping, and when (if ever) to give up. Pure: the
// caller passes the clock and a uniform random number, so it is unit-tested without processes.
//
// The delay after the n-th broken start in a row is "full jitter" (uniform in [0, d)) over the
// capped exponential d = min(max_backoff, initial_backoff * 2^(n-1)): slots failing together do
// not restart in lockstep, and the cap holds for the jittered value too. Deaths that are not
// kBroken restart at once and do not add to the count; a process READY for min_uptime resets it.
class RestartTracker {
 public:
  RestartTracker() noexcept = default;  // with the default policy
  explicit RestartTracker(const RestartPolicy& policy) noexcept : policy_(&policy) {}

  // The process became READY at `now`.
  void on_ready(std::chrono::steady_clock::time_point now) noexcept {
    ready_at_ = now;
    ready_ = true;
  }

  // Called whenever the slot is looked at: a process READY for min_uptime has proven the program.
  void on_alive(std::chrono::steady_clock::time_point now) noexcept {
    if (ready_ && now - ready_at_ >= policy_->min_uptime) broken_in_a_row_ = 0;
  }

  // Records the death (or a failed spawn, as kBroken) and returns the delay before the next
  // start. `uniform01` is a random number in [0, 1).
  std::chrono::milliseconds on_death(DeathKind kind, double uniform01) noexcept {
    ready_ = false;
    if (kind != DeathKind::kBroken) {
      if (kind == DeathKind::kStable) broken_in_a_row_ = 0;
      return std::chrono::milliseconds(0);
    }
    ++broken_in_a_row_;
    return jittered(backoff_cap(broken_in_a_row_), uniform01);
  }

  // The capped exponential bound for the n-th broken start in a row (n >= 1).
  std::chrono::milliseconds backoff_cap(std::uint64_t n) const noexcept {
    const auto cap = policy_->max_backoff;
    auto delay = policy_->initial_backoff;
    for (std::uint64_t i = 1; i < n && delay < cap; ++i) delay *= 2;
    return std::min(delay, cap);
  }

  std::uint64_t broken_in_a_row() const noexcept { return broken_in_a_row_; }
  bool crash_looping() const noexcept {
    return policy_->crash_loop_after != 0 && broken_in_a_row_ >= policy_->crash_loop_after;
  }
  // RestartPolicy::give_up_after, an opt-in: 0 never gives up.
  bool gave_up() const noexcept {
    return policy_->give_up_after != 0 && broken_in_a_row_ >= policy_->give_up_after;
  }

 private:
  static std::chrono::milliseconds jittered(std::chrono::milliseconds cap,
                                            double uniform01) noexcept {
    if (uniform01 < 0) uniform01 = 0;
    if (uniform01 >= 1) uniform01 = 0.999999;
    return std::chrono::milliseconds(
        static_cast<long long>(static_cast<double>(cap.count()) * uniform01));
  }

  inline static const RestartPolicy kDefaultPolicy{};
  const RestartPolicy* policy_ = &kDefaultPolicy;
  std::uint64_t broken_in_a_row_ = 0;
  std::chrono::steady_clock::time_point ready_at_{};
  bool ready_ = false;
};

}  // namespace procpool::detail
