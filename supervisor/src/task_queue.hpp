#pragma once

#include <array>    // one FIFO per priority
#include <cstddef>  // std::size_t
#include <cstdint>  // std::uint32_t
#include <deque>    // std::deque
#include <optional>

#include "procpool/pool_options.hpp"

namespace procpool::detail {

// Tasks waiting for a worker: FIFO within a priority; higher priorities first, but never more
// than kMaxBypass tasks of higher priority are taken while a lower-priority task waits, so Low
// is never starved forever (it gets at least one in kMaxBypass + 1 dispatches).
class TaskQueue {
 public:
  static constexpr unsigned kMaxBypass = 7;

  void push(Priority priority, std::uint32_t task) { levels_[index(priority)].push_back(task); }
  // For tasks that were dispatched and must go again before newer ones (a worker died under
  // them): the front of their level.
  void push_front(Priority priority, std::uint32_t task) {
    levels_[index(priority)].push_front(task);
  }

  std::optional<std::uint32_t> pop() {
    // Walk from High down; a level is passed over only while the levels below it have not yet
    // waited kMaxBypass dispatches.
    for (std::size_t level = 0; level < kLevels; ++level) {
      if (levels_[level].empty()) continue;
      if (lower_waiting(level) && bypassed_[level] >= kMaxBypass) {
        bypassed_[level] = 0;
        continue;  // let a lower level have this one
      }
      if (lower_waiting(level)) ++bypassed_[level];
      const std::uint32_t task = levels_[level].front();
      levels_[level].pop_front();
      return task;
    }
    return std::nullopt;
  }

  // Removes `task` if it is queued (cancellation). Linear, but only on the cancel path.
  bool remove(Priority priority, std::uint32_t task) {
    auto& level = levels_[index(priority)];
    for (auto it = level.begin(); it != level.end(); ++it) {
      if (*it == task) {
        level.erase(it);
        return true;
      }
    }
    return false;
  }

  std::size_t size() const noexcept {
    return levels_[0].size() + levels_[1].size() + levels_[2].size();
  }
  bool empty() const noexcept { return size() == 0; }

  // Takes everything (shutdown, failed pool), in priority order.
  template <class F>
  void drain(F&& f) {
    for (auto& level : levels_) {
      while (!level.empty()) {
        const std::uint32_t task = level.front();
        level.pop_front();
        f(task);
      }
    }
  }

 private:
  static constexpr std::size_t kLevels = 3;
  static std::size_t index(Priority p) noexcept { return static_cast<std::size_t>(p); }
  bool lower_waiting(std::size_t level) const noexcept {
    for (std::size_t l = level + 1; l < kLevels; ++l) {
      if (!levels_[l].empty()) return true;
    }
    return false;
  }

  std::array<std::deque<std::uint32_t>, kLevels> levels_;
  std::array<unsigned, kLevels> bypassed_{};
};

}  // namespace procpool::detail
