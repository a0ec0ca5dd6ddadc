#pragma once
#include "procpool/detail/require_cxx20.hpp"

#include <atomic>       // BatchCallback's count
#include <cstddef>      // std::size_t, std::max_align_t
#include <functional>   // std::function
#include <new>          // placement new
#include <string_view>  // std::string_view
#include <type_traits>  // std::decay_t
#include <utility>      // std::exchange

#include "procpool/task_error.hpp"

namespace procpool {

// What a completion callback receives: the result or the error. Both views are valid only
// during the callback (the result may point into the pool's buffers); copy what you keep.
class TaskOutcome {
 public:
  TaskOutcome(std::string_view value, const TaskError* error, int worker_pid = 0) noexcept
      : value_(value), error_(error), worker_pid_(worker_pid) {}
  bool ok() const noexcept { return error_ == nullptr; }
  std::string_view value() const noexcept { return value_; }
  const TaskError* error() const noexcept { return error_; }
  // The pid of the worker that answered, or 0 if none did (refused, queued when cancelled).
  int worker_pid() const noexcept { return worker_pid_; }

 private:
  std::string_view value_;
  const TaskError* error_;
  int worker_pid_;
};

namespace detail {

// A move-only `void(const TaskOutcome&)` with an inline buffer, so the callback path allocates
// nothing per task for callables up to kInlineSize bytes (a lambda with a few captures).
class Completion {
 public:
  static constexpr std::size_t kInlineSize = 48;

  Completion() noexcept = default;
  template <class F>
  explicit Completion(F&& f) {
    using Fn = std::decay_t<F>;
    if constexpr (sizeof(Fn) <= kInlineSize && alignof(Fn) <= alignof(std::max_align_t) &&
                  std::is_nothrow_move_constructible_v<Fn>) {
      new (storage_) Fn(std::forward<F>(f));
      ops_ = &inline_ops<Fn>;
    } else {
      *reinterpret_cast<Fn**>(storage_) = new Fn(std::forward<F>(f));
      ops_ = &heap_ops<Fn>;
    }
  }
  Completion(Completion&& other) noexcept : ops_(std::exchange(other.ops_, nullptr)) {
    if (ops_ != nullptr) ops_->move(storage_, other.storage_);
  }
  Completion& operator=(Completion&& other) noexcept {
    if (this != &other) {
      reset();
      ops_ = std::exchange(other.ops_, nullptr);
      if (ops_ != nullptr) ops_->move(storage_, other.storage_);
    }
    return *this;
  }
  ~Completion() { reset(); }

  explicit operator bool() const noexcept { return ops_ != nullptr; }

  // Calls the callable once and destroys it.
  void operator()(const TaskOutcome& outcome) {
    const Ops* ops = std::exchange(ops_, nullptr);
    if (ops == nullptr) return;
    struct Destroy {
      const Ops* ops;
      unsigned char* storage;
      ~Destroy() { ops->destroy(storage); }
    } destroy{ops, storage_};
    ops->invoke(storage_, outcome);
  }

 private:
  struct Ops {
    void (*invoke)(unsigned char*, const TaskOutcome&);
    void (*move)(unsigned char* to, unsigned char* from) noexcept;
    void (*destroy)(unsigned char*) noexcept;
  };
  template <class Fn>
  static constexpr Ops inline_ops = {
      [](unsigned char* s, const TaskOutcome& o) { (*std::launder(reinterpret_cast<Fn*>(s)))(o); },
      [](unsigned char* to, unsigned char* from) noexcept {
        Fn* source = std::launder(reinterpret_cast<Fn*>(from));
        new (to) Fn(std::move(*source));
        source->~Fn();
      },
      [](unsigned char* s) noexcept { std::launder(reinterpret_cast<Fn*>(s))->~Fn(); }};
  template <class Fn>
  static constexpr Ops heap_ops = {
      [](unsigned char* s, const TaskOutcome& o) { (**reinterpret_cast<Fn**>(s))(o); },
      [](unsigned char* to, unsigned char* from) noexcept {
        *reinterpret_cast<Fn**>(to) = *reinterpret_cast<Fn**>(from);
      },
      [](unsigned char* s) noexcept { delete *reinterpret_cast<Fn**>(s); }};

  void reset() noexcept {
    if (ops_ != nullptr) std::exchange(ops_, nullptr)->destroy(storage_);
  }

  alignas(std::max_align_t) unsigned char storage_[kInlineSize];
  const Ops* ops_ = nullptr;
};

// The one callable of a Pool::submit_batch, shared by its tasks, each calling it with its own
// index (BatchItem). Counted, not a shared_ptr per task: the batch takes one reference per task
// up front, in one step, and each task's completion gives its own back once run (or dropped),
// the last one destroying the callable.
class BatchCallback {
 public:
  BatchCallback() = default;
  BatchCallback(const BatchCallback&) = delete;
  BatchCallback& operator=(const BatchCallback&) = delete;

  virtual void call(std::size_t index, const TaskOutcome& outcome) = 0;
  void retain(std::size_t count) noexcept { refs_.fetch_add(count, std::memory_order_relaxed); }
  void release(std::size_t count = 1) noexcept {
    if (refs_.fetch_sub(count, std::memory_order_acq_rel) == count) delete this;
  }

 protected:
  virtual ~BatchCallback() = default;

 private:
  std::atomic<std::size_t> refs_{1};  // the submitter's, until it has handed out the tasks'
};

template <class F>
class BatchCallbackOf final : public BatchCallback {
 public:
  template <class G>
  explicit BatchCallbackOf(G&& fn) : fn_(std::forward<G>(fn)) {}
  void call(std::size_t index, const TaskOutcome& outcome) override { fn_(index, outcome); }

 private:
  F fn_;
};

// One task's completion in a batch: the shared callable and the task's index (fits Completion's
// inline buffer, so a batch allocates nothing per task). Holds one of the batch's references.
class BatchItem {
 public:
  BatchItem(BatchCallback* batch, std::size_t index) noexcept : batch_(batch), index_(index) {}
  BatchItem(BatchItem&& other) noexcept
      : batch_(std::exchange(other.batch_, nullptr)), index_(other.index_) {}
  BatchItem& operator=(BatchItem&&) = delete;
  ~BatchItem() {
    if (batch_ != nullptr) batch_->release();
  }
  void operator()(const TaskOutcome& outcome) { batch_->call(index_, outcome); }

 private:
  BatchCallback* batch_;
  std::size_t index_;
};

// What Pool::submit_chunked calls once per item: (index into the payloads, outcome).
using ItemCallback = std::function<void(std::size_t, const TaskOutcome&)>;

}  // namespace detail
}  // namespace procpool
