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

namespace {

// The streams this thread is running, innermost first (a callback may deliver another's).
struct RunningStream {
  ProgressStream* stream;
  RunningStream* outer;
};
thread_local RunningStream* tls_running = nullptr;

}  // namespace

bool ProgressStream::running_here() const noexcept {
  for (const RunningStream* r = tls_running; r != nullptr; r = r->outer) {
    if (r->stream == this) return true;
  }
  return false;
}

ProgressStream::WaitingInCallback::WaitingInCallback() noexcept {
  for (RunningStream* r = tls_running; r != nullptr; r = r->outer) {
    r->stream->callbacks_waiting_.fetch_add(1, std::memory_order_acq_rel);
    any_ = true;
  }
}

ProgressStream::WaitingInCallback::~WaitingInCallback() {
  for (RunningStream* r = tls_running; r != nullptr; r = r->outer) {
    r->stream->callbacks_waiting_.fetch_sub(1, std::memory_order_acq_rel);
  }
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
  RunningStream frame{this, tls_running};
  tls_running = &frame;
  struct Pop {
    RunningStream& frame;
    ~Pop() { tls_running = frame.outer; }
  } pop{frame};
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
