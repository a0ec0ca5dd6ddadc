#pragma once

// procpool::Supervisor's implementation. Every instance lives on one loop thread
// (event_loop.hpp); the public calls hand their work to it and wait for the answer, so nothing
// here needs a lock of its own, and callbacks run with none held. supervisor.cpp has the
// life cycle and the per-program calls; supervisor_update.cpp the rolling updates, removal and
// memory recycling (rollout.hpp).

#include <atomic>         // std::atomic
#include <future>         // std::promise
#include <memory>         // std::unique_ptr
#include <optional>       // std::optional
#include <random>         // std::mt19937_64
#include <string>         // names
#include <thread>         // std::thread
#include <type_traits>    // std::is_void_v
#include <unordered_map>  // std::unordered_map
#include <vector>         // entries

#include "event_loop.hpp"
#include "managed_process.hpp"
#include "notify_socket.hpp"
#include "procpool/supervisor.hpp"
#include "rollout.hpp"

namespace procpool {

class Supervisor::Impl {
 public:
  explicit Impl(Options options);
  ~Impl();

  // Runs `fn` on the loop thread and returns its result (or throws what it threw). From the
  // loop thread itself (an event callback), runs it at once. The exception object itself does
  // not cross threads: its kind, text and numbers do, and the caller's thread throws a new one
  // (an exception_ptr's count lives in uninstrumented libstdc++, which TSan cannot follow).
  template <class F>
  auto call(F&& fn) -> decltype(fn());

  void add(ProgramSpec spec);
  void start(const std::string& name);
  void restart(const std::string& name);
  void start_all();
  void kill(const std::string* name);  // null: every program
  void stop(const std::string* name);  // waits, unless called from the loop thread
  void update(ProgramSpec spec, UpdateOptions options);
  void remove(const std::string& name);
  std::vector<ProcessStatus> status();
  std::uint64_t callback_errors() const noexcept { return callback_errors_.load(); }

 private:
  struct Failure {
    bool supervisor_error = false;
    SupervisorError::Kind kind = SupervisorError::Kind::ShutDown;
    std::string message;
    int pid = 0;
    int error_code = 0;
  };
  // A stopped instance no slot holds any more (replaced, removed), destroyed once idle.
  struct Retiring {
    std::unique_ptr<detail::ManagedProcess> process;
  };

  static void check_spec(const ProgramSpec& spec);  // throws BadSpec
  std::shared_ptr<const detail::Program> make_program(ProgramSpec spec,
                                                      const detail::Program* previous);
  detail::ProgramEntry* find(const std::string& name) noexcept;
  detail::ProgramEntry& entry_of(const std::string& name);  // throws UnknownProgram
  void throw_if_updating(const detail::ProgramEntry& entry) const;

  // Rollouts (supervisor_update.cpp).
  void retire(std::unique_ptr<detail::ManagedProcess> process, bool kill, KillReason reason,
              std::function<void()> gone);
  void start_rollout(detail::ProgramEntry& entry, std::shared_ptr<const detail::Program> next,
                     detail::Rollout::Options options);
  // `action` now, or once the program's rollout (interrupted, say) is over.
  void when_no_rollout(detail::ProgramEntry& entry, std::function<void()> action);
  void interrupt_rollout(detail::ProgramEntry& entry, const std::string& why, bool kill);
  // A rollout that advance() says is over: its update() caller told, the rollout destroyed.
  void finish_rollout(detail::ProgramEntry& entry);
  bool recycle(detail::ManagedProcess& process);
  void kick();
  void advance_rollouts();

  // Events are delivered from the loop's queue, after the step that made them: the callback
  // never runs in the middle of a transition, and may call back into the supervisor.
  void queue_event(SupervisorEvent event);
  void check_shutdown();

  Options options_;
  detail::EventLoop loop_;
  detail::NotifySocket notify_;
  detail::ProcessHost host_;
  std::mt19937_64 rng_;
  // Destroyed before loop_: the instances unwatch their fds and cancel their timers in it.
  std::vector<std::unique_ptr<detail::ProgramEntry>> entries_;
  std::vector<Retiring> retiring_;
  // The update() callers waiting for a rollout: its failure, empty if it succeeded.
  std::unordered_map<const detail::Rollout*, std::function<void(const Failure*)>> rollout_done_;
  std::size_t rollouts_ = 0;  // entries with a rollout
  bool kicked_ = false;       // an advance_rollouts() is posted
  std::unordered_map<int, detail::ManagedProcess*> by_pid_;
  std::atomic<std::uint64_t> callback_errors_{0};
  bool shutting_down_ = false;
  std::promise<void> started_;
  std::thread::id loop_thread_;
  std::thread thread_;
};

template <class F>
auto Supervisor::Impl::call(F&& fn) -> decltype(fn()) {
  if (std::this_thread::get_id() == loop_thread_) return fn();
  using R = decltype(fn());
  std::promise<R> promise;
  std::optional<Failure> failure;
  auto future = promise.get_future();
  loop_.post([&] {
    try {
      if constexpr (std::is_void_v<R>) {
        fn();
        promise.set_value();
      } else {
        promise.set_value(fn());
      }
      return;
    } catch (const SupervisorError& e) {
      failure = Failure{true, e.kind(), e.what(), e.pid(), e.error_code()};
    } catch (const std::exception& e) {
      failure = Failure{false, SupervisorError::Kind::ShutDown, e.what(), 0, 0};
    } catch (...) {
      failure = Failure{false, SupervisorError::Kind::ShutDown, "unknown exception", 0, 0};
    }
    if constexpr (std::is_void_v<R>) {
      promise.set_value();
    } else {
      promise.set_value(R{});
    }
  });
  const auto rethrow = [&failure] {
    if (!failure) return;
    if (failure->supervisor_error) {
      throw SupervisorError(failure->kind, failure->message, failure->pid, failure->error_code);
    }
    throw Error(failure->message);
  };
  if constexpr (std::is_void_v<R>) {
    future.get();
    rethrow();
  } else {
    R result = future.get();
    rethrow();
    return result;
  }
}

}  // namespace procpool
