#pragma once
#include "procpool/detail/require_cxx20.hpp"

// procpool::Future<T>: what Pool::submit returns (docs/pool.md, "Futures").
//
// It keeps std::future's contract (get, wait, wait_for, wait_until, valid) and adds ready() and
// then(). Why not std::future: a std::future whose waiting the pool can do itself is a deferred
// one, and its wait_for() never says ready. This one waits as the pool's get() always did: the
// waiting thread spins briefly on the worker's result ring, draining it itself (a thread woken
// by another costs far more than a lone round trip), and only then sleeps on a futex, with the
// deadline if there is one.

#include <atomic>       // the done flag
#include <chrono>       // deadlines
#include <cstdint>      // std::uint32_t
#include <exception>    // std::exception_ptr
#include <functional>   // continuations
#include <future>       // std::future_status, std::future_error
#include <memory>       // std::shared_ptr
#include <mutex>        // the continuation's hand-over
#include <optional>     // errors, deadlines
#include <type_traits>  // std::is_invocable_v
#include <utility>      // std::move

#include "procpool/task_error.hpp"

namespace procpool {

template <class T>
class Future;

namespace detail {

// The part of a future's state its waiters sleep on. The completing side sets it once.
class FutureSignal {
 public:
  using Clock = std::chrono::steady_clock;

  bool is_set() const noexcept { return done_.load(std::memory_order_acquire) != 0; }
  // Marks it done and wakes the threads sleeping in wait_until (a futex wake only if any is).
  void set() noexcept;
  // Sleeps until set or the deadline (none: forever); true if set.
  bool wait_until(std::optional<Clock::time_point> deadline) noexcept;

 private:
  std::atomic<std::uint32_t> done_{0};
  std::atomic<std::uint32_t> sleepers_{0};
};

// Who waits for a future: the pool's engine, which spins on its result rings before it sleeps.
class FutureWaiter {
 public:
  // True once `signal` is set; false if `deadline` passed first (none: waits until set).
  virtual bool await(FutureSignal& signal,
                     std::optional<std::chrono::steady_clock::time_point> deadline) = 0;

 protected:
  ~FutureWaiter() = default;
};

template <class T>
struct FutureState {
  FutureSignal signal;
  std::optional<T> value;
  std::optional<TaskError> error;
  std::exception_ptr exception;  // storing the outcome failed (out of memory)

  // then(): the continuation, run once by whichever of the completing thread and then() sees
  // both the outcome and the continuation.
  std::mutex continuation_mutex;
  std::function<void()> continuation;
  std::atomic<bool> has_continuation{false};

  // The completing side, after value/error/exception are stored.
  void complete() {
    signal.set();
    if (has_continuation.load(std::memory_order_seq_cst)) run_continuation();
  }
  void run_continuation() {
    std::function<void()> next;
    {
      std::lock_guard lock(continuation_mutex);
      next.swap(continuation);
    }
    if (next) next();
  }
};

template <class T>
Future<T> make_future(std::shared_ptr<FutureState<T>> state, std::shared_ptr<FutureWaiter> waiter);

}  // namespace detail

template <class T>
class Future {
 public:
  Future() noexcept = default;
  Future(Future&&) noexcept = default;
  Future& operator=(Future&&) noexcept = default;
  Future(const Future&) = delete;
  Future& operator=(const Future&) = delete;

  // False once get() or then() consumed it, or if default-constructed.
  bool valid() const noexcept { return state_ != nullptr; }
  // The outcome is in: get() will not wait.
  bool ready() const noexcept { return state_ && state_->signal.is_set(); }

  // Waits for the outcome, then returns the value or throws the task's TaskError.
  T get() {
    check();
    wait();
    auto state = std::move(state_);
    waiter_.reset();
    if (state->exception) std::rethrow_exception(state->exception);
    if (state->error) throw *state->error;
    return std::move(*state->value);
  }

  void wait() const {
    check();
    if (!state_->signal.is_set()) waiter_->await(state_->signal, std::nullopt);
  }

  template <class Rep, class Period>
  std::future_status wait_for(const std::chrono::duration<Rep, Period>& timeout) const {
    return wait_until(std::chrono::steady_clock::now() + timeout);
  }

  template <class Clock, class Duration>
  std::future_status wait_until(const std::chrono::time_point<Clock, Duration>& deadline) const {
    check();
    if (state_->signal.is_set()) return std::future_status::ready;
    const auto steady_deadline =
        std::chrono::steady_clock::now() +
        std::chrono::ceil<std::chrono::steady_clock::duration>(deadline - Clock::now());
    return waiter_->await(state_->signal, steady_deadline) ? std::future_status::ready
                                                           : std::future_status::timeout;
  }

  // Calls `next(Future<T>)` with this future, ready, once the outcome is in: at once in this
  // thread if it is already, else in the thread that delivers it (as a completion callback:
  // outside the pool's lock; what it throws there is caught and counted in
  // PoolMetrics::callback_errors). Consumes this future.
  template <class F>
  void then(F&& next) {
    static_assert(std::is_invocable_v<F&, Future<T>>, "then() takes a callable of Future<T>");
    check();
    auto state = std::move(state_);
    auto waiter = std::move(waiter_);
    {
      // The continuation holds the state until it runs, which it always does: every task is
      // resolved, at the latest when the pool stops.
      std::lock_guard lock(state->continuation_mutex);
      state->continuation = [state, waiter, next = std::forward<F>(next)]() mutable {
        Future<T> ready_future;
        ready_future.state_ = std::move(state);
        ready_future.waiter_ = std::move(waiter);
        next(std::move(ready_future));
      };
    }
    state->has_continuation.store(true, std::memory_order_seq_cst);
    if (state->signal.is_set()) state->run_continuation();
  }

 private:
  friend Future<T> detail::make_future<T>(std::shared_ptr<detail::FutureState<T>>,
                                          std::shared_ptr<detail::FutureWaiter>);

  void check() const {
    if (!state_) throw std::future_error(std::future_errc::no_state);
  }

  std::shared_ptr<detail::FutureState<T>> state_;
  // Keeps the pool's engine alive while the future waits: the last future of a destroyed Pool
  // may still be waited for (docs/pool.md, "Callbacks, fork() and signals").
  std::shared_ptr<detail::FutureWaiter> waiter_;
};

template <class T>
Future<T> detail::make_future(std::shared_ptr<FutureState<T>> state,
                              std::shared_ptr<FutureWaiter> waiter) {
  Future<T> future;
  future.state_ = std::move(state);
  future.waiter_ = std::move(waiter);
  return future;
}

}  // namespace procpool
