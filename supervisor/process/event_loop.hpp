#pragma once

// The supervisor's one thread of control: epoll over fds, a heap of deadlines, and an eventfd
// through which other threads hand it work. Everything that touches a child (launch, signal,
// reap) runs on the thread that calls run(): it launches, so it is the thread PR_SET_PDEATHSIG
// watches (launcher.hpp), and it must live as long as the children.

#include <chrono>      // std::chrono::steady_clock
#include <cstdint>     // std::uint64_t, std::uint32_t
#include <functional>  // std::function
#include <map>         // std::map
#include <mutex>       // std::mutex
#include <queue>       // std::priority_queue
#include <unordered_map>
#include <vector>  // std::vector

#include "procpool/unique_fd.hpp"

namespace procpool::detail {

class EventLoop {
 public:
  using Clock = std::chrono::steady_clock;
  using TimerId = std::uint64_t;

  EventLoop();  // throws SystemError
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // Loop thread only. `on_ready` gets the epoll events; it may remove its own fd (or others).
  void watch(int fd, std::uint32_t events, std::function<void(std::uint32_t)> on_ready);
  void unwatch(int fd) noexcept;
  // Loop thread only. Runs `fn` once at `deadline` unless cancelled first.
  TimerId at(Clock::time_point deadline, std::function<void()> fn);
  TimerId after(std::chrono::milliseconds delay, std::function<void()> fn) {
    return at(Clock::now() + delay, std::move(fn));
  }
  void cancel(TimerId id) noexcept;

  // Any thread: runs `fn` on the loop thread, soon.
  void post(std::function<void()> fn);

  // Runs until stop() has been called and the posted work is done.
  void run();
  // Loop thread only.
  void stop() noexcept { stopping_ = true; }

 private:
  struct Deadline {
    Clock::time_point when;
    TimerId id;
    bool operator>(const Deadline& other) const noexcept {
      return when != other.when ? when > other.when : id > other.id;
    }
  };

  void run_due_timers();
  void run_posted();
  int next_timeout_ms() const;

  UniqueFd epoll_;
  UniqueFd wake_;
  std::unordered_map<int, std::function<void(std::uint32_t)>> watched_;
  std::priority_queue<Deadline, std::vector<Deadline>, std::greater<>> deadlines_;
  std::unordered_map<TimerId, std::function<void()>> timers_;
  TimerId next_timer_ = 1;
  bool stopping_ = false;

  std::mutex posted_mutex_;
  std::vector<std::function<void()>> posted_;  // guarded by posted_mutex_
};

}  // namespace procpool::detail
