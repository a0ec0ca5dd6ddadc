#pragma once

#include <mutex>  // std::mutex, std::unique_lock

#include "procpool/wait_strategy.hpp"  // cpu_relax

namespace procpool::detail {

// Takes `lock`'s mutex, trying for a moment before sleeping on it. PoolCore's sections under
// its mutex are short, and glibc's std::mutex sleeps on the first failed try: each such sleep
// costs the holder a futex wake when it unlocks and the sleeper a context switch, far more than
// the section it waited for. Past the bound the holder is likely descheduled (more runnable
// threads than CPUs), and sleeping is the better use of the CPU.
inline void spin_acquire(std::unique_lock<std::mutex>& lock) {
  constexpr int kTries = 64;
  for (int i = 0; i < kTries; ++i) {
    if (lock.try_lock()) return;
    cpu_relax();
    cpu_relax();
  }
  lock.lock();
}

// A unique_lock on `mu`, taken by spin_acquire.
inline std::unique_lock<std::mutex> spin_locked(std::mutex& mu) {
  std::unique_lock lock(mu, std::defer_lock);
  spin_acquire(lock);
  return lock;
}

}  // namespace procpool::detail
