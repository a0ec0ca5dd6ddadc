#include "progress_stream.hpp"

#include <utility>  // std::move

#include "callback_scope.hpp"

namespace procpool::detail {

void ProgressStream::push_progress(std::string data, std::uint32_t attempt, int pid) {
  std::lock_guard lock(mu_);
  Event& event = events_.emplace_back();
  event.data = std::move(data);
  event.attempt = attempt;
  event.pid = pid;
  bytes_ += event.data.size();
  if (events_.size() > kMaxBacklog || bytes_ > kMaxBacklogBytes) overflowed_ = true;
}

bool ProgressStream::backlogged() {
  std::lock_guard lock(mu_);
  return events_.size() > kMaxBacklog || bytes_ > kMaxBacklogBytes;
}

void ProgressStream::push_outcome(Completion completion, std::string value,
                                  std::optional<TaskError> error, int pid) {
  std::lock_guard lock(mu_);
  Event& event = events_.emplace_back();
  event.data = std::move(value);
  event.pid = pid;
  event.outcome = true;
  event.completion = std::move(completion);
  event.error = std::move(error);
}

bool ProgressStream::run() {
  std::unique_lock lock(mu_);
  if (running_) return false;
  running_ = true;
  while (!events_.empty()) {
    Event event = std::move(events_.front());
    events_.pop_front();
    if (!event.outcome) bytes_ -= event.data.size();
    lock.unlock();
    try {
      if (event.outcome) {
        event.completion(TaskOutcome(event.data, event.error ? &*event.error : nullptr, event.pid));
      } else {
        callback_(TaskProgress{event.data, event.attempt, event.pid, index_});
      }
    } catch (...) {
      callback_threw(event.outcome ? "a completion callback" : "a progress callback", -1,
                     event.pid);
    }
    lock.lock();
  }
  running_ = false;
  return std::exchange(overflowed_, false);
}

}  // namespace procpool::detail
