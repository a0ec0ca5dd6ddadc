#pragma once

#include <atomic>    // callbacks waiting
#include <cstddef>   // std::size_t
#include <cstdint>   // attempts
#include <deque>     // the mailbox
#include <mutex>     // the mailbox's own lock
#include <optional>  // the final error
#include <string>    // emitted bytes

#include "procpool/task_error.hpp"
#include "procpool/task_outcome.hpp"
#include "procpool/task_progress.hpp"

namespace procpool::detail {

// One task's streamed results (TaskOptions::on_progress) and its outcome, delivered in the order
// the worker sent them. deliver() batches run on several threads at once (a waiter's get(), the
// supervisor thread), so per-task order cannot come from the batches: the pool pushes each
// event here, under its mutex, as it reads it from the worker, and whichever thread delivers
// runs the mailbox unless another thread is running it already, which then runs what was added
// too. A callback that calls back into the pool (get() of another task, a nested delivery) finds
// this mailbox being run and leaves it to the outer call: no thread ever waits for another here.
//
// The pool keeps one per task that has on_progress (TaskRecord::progress) until the outcome is
// pushed; a delivery that names it keeps it alive until it has run.
class ProgressStream {
 public:
  explicit ProgressStream(ProgressCallback callback) : callback_(std::move(callback)) {}
  // The payload's index in its batch (TaskProgress::index); set before the task is dispatched.
  void set_index(std::size_t index) noexcept { index_ = index; }
  ProgressStream(const ProgressStream&) = delete;
  ProgressStream& operator=(const ProgressStream&) = delete;

  void push_progress(std::string data, std::uint32_t attempt, int pid);
  // The last event: nothing is pushed after it.
  void push_outcome(Completion completion, std::string value, std::optional<TaskError> error,
                    int pid);
  // Runs every event pushed so far, in order, unless another thread is running them (then
  // returns at once: that thread runs these too). A callback that throws is reported and
  // counted (callback_threw); the events after it still run. Call inside a CallbackScope.
  // True if the mailbox had gone over its bound since the last run: the pool reads the
  // worker's ring again (WorkerLoad::held_by).
  bool run();

  // More than kMaxBacklog events or kMaxBacklogBytes bytes wait to be run.
  bool backlogged();
  // True while this thread runs the stream's callbacks: its worker's ring is then read by this
  // thread even above the bound.
  bool running_here() const noexcept;
  // True while one of the stream's callbacks waits for a future (WaitingInCallback): every
  // thread then reads its worker's ring, or a callback that waits for another task on that
  // worker would wait forever.
  bool callback_waiting() const noexcept {
    return callbacks_waiting_.load(std::memory_order_acquire) != 0;
  }
  // For the pool's waits: while alive, every stream this thread is running counts as having a
  // callback that waits. any(): there was one.
  class WaitingInCallback {
   public:
    WaitingInCallback() noexcept;
    ~WaitingInCallback();
    WaitingInCallback(const WaitingInCallback&) = delete;
    WaitingInCallback& operator=(const WaitingInCallback&) = delete;
    bool any() const noexcept { return any_; }

   private:
    bool any_ = false;
  };
  static constexpr std::size_t kMaxBacklog = 256;
  static constexpr std::size_t kMaxBacklogBytes = 16 * 1024 * 1024;

 private:
  struct Event {
    std::string data;  // progress bytes, or the outcome's value
    std::uint32_t attempt = 0;
    int pid = 0;
    bool outcome = false;
    Completion completion;  // the outcome's
    std::optional<TaskError> error;
  };

  ProgressCallback callback_;
  std::size_t index_ = 0;
  std::mutex mu_;  // in-process only: guards events_ and running_
  std::deque<Event> events_;
  std::size_t bytes_ = 0;  // events_'s progress bytes
  bool running_ = false;
  bool overflowed_ = false;  // went over the bound since the last run
  std::atomic<int> callbacks_waiting_{0};
};

}  // namespace procpool::detail
