#include "event_loop.hpp"

#include <sys/epoll.h>    // epoll_create1, epoll_ctl, epoll_wait
#include <sys/eventfd.h>  // eventfd
#include <unistd.h>       // read, write

#include <algorithm>  // std::clamp
#include <cerrno>     // errno
#include <utility>    // std::move

#include "procpool/error.hpp"

namespace procpool::detail {

EventLoop::EventLoop()
    : epoll_(::epoll_create1(EPOLL_CLOEXEC)), wake_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
  if (!epoll_) throw_errno(errno, "epoll_create1");
  if (!wake_) throw_errno(errno, "eventfd");
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = wake_.get();
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, wake_.get(), &ev) != 0) {
    throw_errno(errno, "epoll_ctl(eventfd)");
  }
}

void EventLoop::watch(int fd, std::uint32_t events, std::function<void(std::uint32_t)> on_ready) {
  epoll_event ev{};
  ev.events = events;
  ev.data.fd = fd;
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) {
    throw_errno(errno, "epoll_ctl(ADD, fd " + std::to_string(fd) + ")");
  }
  watched_[fd] = std::move(on_ready);
}

void EventLoop::unwatch(int fd) noexcept {
  if (watched_.erase(fd) != 0) ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr);
}

EventLoop::TimerId EventLoop::at(Clock::time_point deadline, std::function<void()> fn) {
  const TimerId id = next_timer_++;
  timers_.emplace(id, std::move(fn));
  deadlines_.push({deadline, id});
  return id;
}

// The heap entry stays until it comes due; a cancelled one then finds no timer and is skipped.
void EventLoop::cancel(TimerId id) noexcept { timers_.erase(id); }

void EventLoop::post(std::function<void()> fn) {
  {
    const std::lock_guard lock(posted_mutex_);
    posted_.push_back(std::move(fn));
  }
  const std::uint64_t one = 1;
  // EAGAIN means the counter is already non-zero: the loop will wake anyway.
  [[maybe_unused]] const auto n = ::write(wake_.get(), &one, sizeof one);
}

int EventLoop::next_timeout_ms() const {
  if (deadlines_.empty()) return -1;
  const auto left = deadlines_.top().when - Clock::now();
  if (left <= Clock::duration::zero()) return 0;
  // Rounded up, so a timer never fires a little early and spins.
  const auto ms = std::chrono::ceil<std::chrono::milliseconds>(left).count();
  return static_cast<int>(std::clamp<long long>(ms, 0, 60'000));
}

void EventLoop::run_due_timers() {
  const auto now = Clock::now();
  while (!deadlines_.empty() && deadlines_.top().when <= now) {
    const TimerId id = deadlines_.top().id;
    deadlines_.pop();
    const auto it = timers_.find(id);
    if (it == timers_.end()) continue;
    auto fn = std::move(it->second);
    timers_.erase(it);
    fn();
  }
}

void EventLoop::run_posted() {
  std::vector<std::function<void()>> batch;
  {
    const std::lock_guard lock(posted_mutex_);
    batch.swap(posted_);
  }
  for (auto& fn : batch) fn();
}

void EventLoop::run() {
  constexpr int kMaxEvents = 32;
  epoll_event events[kMaxEvents];
  for (;;) {
    run_posted();
    if (stopping_) {
      const std::lock_guard lock(posted_mutex_);
      if (posted_.empty()) return;
      continue;
    }
    const int n = ::epoll_wait(epoll_.get(), events, kMaxEvents, next_timeout_ms());
    if (n < 0 && errno != EINTR) throw_errno(errno, "epoll_wait");
    for (int i = 0; i < n; ++i) {
      const int fd = events[i].data.fd;
      if (fd == wake_.get()) {
        std::uint64_t count = 0;
        [[maybe_unused]] const auto r = ::read(wake_.get(), &count, sizeof count);
        continue;
      }
      // Looked up per event: an earlier callback in this batch may have unwatched this fd.
      const auto it = watched_.find(fd);
      if (it == watched_.end()) continue;
      auto callback = it->second;  // a copy: the callback may unwatch itself
      callback(events[i].events);
    }
    run_due_timers();
  }
}

}  // namespace procpool::detail
