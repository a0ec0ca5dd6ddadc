#pragma once

#include <array>    // one FIFO per priority
#include <cstddef>  // std::size_t
#include <cstdint>  // std::uint32_t
#include <deque>    // std::deque
#include <optional>

#include "procpool/pool_options.hpp"

namespace procpool::detail {

// Tasks waiting for a worker: FIFO within a priority; higher priorities first, but a level
// that has been taken kMaxBypass times in a row while a lower level waits gives its next turn to
// the level below. So under a flood of every level Normal gets at least one dispatch in
// kMaxBypass + 1 and Low at least one in (kMaxBypass + 1)^2: no level starves forever.
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
        continue;  // let a lower level have this one
      }
      if (lower_waiting(level)) ++bypassed_[level];
      turn_taken(level);
      const std::uint32_t task = levels_[level].front();
      levels_[level].pop_front();
      return task;
    }
    return std::nullopt;
  }

  // What pop() would return next, without taking it.
  std::optional<std::uint32_t> peek() const noexcept {
    for (std::size_t level = 0; level < kLevels; ++level) {
      if (levels_[level].empty()) continue;
      if (lower_waiting(level) && bypassed_[level] >= kMaxBypass) continue;
      return levels_[level].front();
    }
    return std::nullopt;
  }

  // Whether every waiting task has the same priority (or none waits).
  bool one_level() const noexcept {
    std::size_t levels = 0;
    for (const auto& level : levels_) levels += !level.empty();
    return levels <= 1;
  }

  // The oldest task of one level, and taking it without it counting as a turn: the dispatcher
  // packs it into the frame of the task pop() just gave (coalescing.cpp), one dispatch.
  std::optional<std::uint32_t> front(Priority priority) const noexcept {
    const auto& level = levels_[index(priority)];
    if (level.empty()) return std::nullopt;
    return level.front();
  }
  void pop_front(Priority priority) { levels_[index(priority)].pop_front(); }

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

  // The highest level with a task waiting, if any.
  std::optional<Priority> top() const noexcept {
    for (std::size_t level = 0; level < kLevels; ++level) {
      if (!levels_[level].empty()) return static_cast<Priority>(level);
    }
    return std::nullopt;
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

  // A level passed over has had its turn taken only when the next waiting level below it is
  // served. If that level passed its own turn further down (Normal to Low), High stays passed
  // over for one more dispatch, so Low's turn comes out of Normal's share and does not make
  // Normal wait for another kMaxBypass High tasks.
  void turn_taken(std::size_t served) noexcept {
    for (std::size_t l = served; l-- > 0;) {
      bypassed_[l] = 0;
      if (!levels_[l].empty()) break;
    }
  }

  std::array<std::deque<std::uint32_t>, kLevels> levels_;
  std::array<unsigned, kLevels> bypassed_{};
};

}  // namespace procpool::detail
