// procpool::Supervisor: the public face of the process layer. Every instance lives on one loop
// thread (event_loop.hpp); the public calls hand their work to it and wait for the answer, so
// nothing here needs a lock of its own, and callbacks run with none held.

#include "procpool/supervisor.hpp"

#include <pthread.h>    // pthread_sigmask
#include <signal.h>     // SIGPIPE
#include <sys/epoll.h>  // EPOLLIN

#include <atomic>         // std::atomic
#include <future>         // std::promise
#include <memory>         // std::unique_ptr
#include <optional>       // std::optional
#include <random>         // std::mt19937_64
#include <thread>         // std::thread
#include <unordered_map>  // std::unordered_map

#include "event_loop.hpp"
#include "managed_process.hpp"
#include "notify_socket.hpp"

namespace procpool {

SupervisorError::SupervisorError(Kind kind, const std::string& message, int pid, int error_code)
    : Error(message), kind_(kind), pid_(pid), error_code_(error_code) {}
SupervisorError::~SupervisorError() = default;

const char* to_string(SupervisorError::Kind kind) noexcept {
  switch (kind) {
    case SupervisorError::Kind::UnknownProgram:
      return "unknown_program";
    case SupervisorError::Kind::DuplicateProgram:
      return "duplicate_program";
    case SupervisorError::Kind::BadSpec:
      return "bad_spec";
    case SupervisorError::Kind::SpawnFailed:
      return "spawn_failed";
    case SupervisorError::Kind::ShutDown:
      return "shut_down";
  }
  return "unknown";
}

class Supervisor::Impl {
 public:
  explicit Impl(Options options) : options_(std::move(options)), rng_(std::random_device{}()) {
    host_.loop = &loop_;
    host_.notify_path = notify_.path();
    host_.emit = [this](SupervisorEvent event) { queue_event(std::move(event)); };
    host_.count_callback_error = [this] { callback_errors_.fetch_add(1); };
    host_.claim_pid = [this](int pid, detail::ManagedProcess* process) {
      if (process != nullptr) {
        by_pid_[pid] = process;
      } else {
        by_pid_.erase(pid);
      }
    };
    host_.uniform01 = [this] { return std::uniform_real_distribution<double>(0, 1)(rng_); };
    host_.changed = [this] { check_shutdown(); };
    loop_.watch(notify_.fd(), EPOLLIN, [this](std::uint32_t) {
      notify_.receive([this](int pid, const detail::NotifyMessage& message) {
        // NotifyAccess=main: only an instance's own main pid speaks for it.
        const auto it = by_pid_.find(pid);
        if (it != by_pid_.end()) it->second->on_notify(message);
      });
    });
    thread_ = std::thread([this] {
      // A sink writing to a pipe whose reader is gone gets EPIPE instead of killing the host.
      sigset_t pipe;
      sigemptyset(&pipe);
      sigaddset(&pipe, SIGPIPE);
      pthread_sigmask(SIG_BLOCK, &pipe, nullptr);
      loop_thread_ = std::this_thread::get_id();
      started_.set_value();
      loop_.run();
    });
    started_.get_future().wait();
  }

  ~Impl() {
    call([this] {
      shutting_down_ = true;
      for (auto& program : instances_) {
        for (auto& instance : program) instance->stop({});
      }
      check_shutdown();
    });
    thread_.join();
    // Anything left (nothing, after a graceful stop) is SIGKILLed and reaped here.
    instances_.clear();
  }

  // Runs `fn` on the loop thread and returns its result (or throws what it threw). From the
  // loop thread itself (an event callback), runs it at once. The exception object itself does
  // not cross threads: its kind, text and numbers do, and the caller's thread throws a new one
  // (an exception_ptr's count lives in uninstrumented libstdc++, which TSan cannot follow).
  template <class F>
  auto call(F&& fn) -> decltype(fn()) {
    if (std::this_thread::get_id() == loop_thread_) return fn();
    using R = decltype(fn());
    struct Failure {
      bool supervisor_error = false;
      SupervisorError::Kind kind = SupervisorError::Kind::ShutDown;
      std::string message;
      int pid = 0;
      int error_code = 0;
    };
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

  void add(ProgramSpec spec) {
    const auto bad = [&](const std::string& why, int code = 0) {
      return SupervisorError(SupervisorError::Kind::BadSpec,
                             "program \"" + spec.name + "\": " + why, 0, code);
    };
    if (spec.name.empty()) throw bad("empty name");
    if (spec.name.find(':') != std::string::npos) throw bad("the name contains ':'");
    if (spec.command.empty()) throw bad("empty command");
    if (spec.numprocs == 0) throw bad("numprocs is 0");
    if (spec.stop_signal <= 0 || spec.stop_signal >= NSIG) throw bad("invalid stop_signal");
    if (spec.readiness == ReadinessMode::TcpPort && spec.ready_port == 0) {
      throw bad("readiness TcpPort needs ready_port");
    }
    if (spec.health_interval.count() <= 0) throw bad("health_interval must be positive");
    call([&] {
      if (shutting_down_) throw SupervisorError(SupervisorError::Kind::ShutDown, "shutting down");
      if (find(spec.name) != nullptr) {
        throw SupervisorError(SupervisorError::Kind::DuplicateProgram,
                              "program \"" + spec.name + "\" already added");
      }
      auto program = std::make_unique<detail::Program>();
      try {
        program->stdout_sinks = detail::SinkSet::make(spec.stdout_sink);
        program->stderr_sinks = detail::SinkSet::make(spec.stderr_sink);
        // One file for both streams must be one writer: two would each rotate it on their own
        // count of its size.
        if (!spec.stderr_sink.file.empty() && spec.stderr_sink.file == spec.stdout_sink.file) {
          program->stderr_sinks->file = program->stdout_sinks->file;
        }
      } catch (const SystemError& e) {
        throw bad(std::string("output sink: ") + e.what(), e.code());
      }
      program->spec = std::move(spec);
      std::vector<std::unique_ptr<detail::ManagedProcess>> instances;
      for (unsigned i = 0; i < program->spec.numprocs; ++i) {
        instances.push_back(std::make_unique<detail::ManagedProcess>(host_, *program, i));
      }
      programs_.push_back(std::move(program));
      instances_.push_back(std::move(instances));
    });
  }

  void start(const std::string& name) {
    call([&] {
      if (shutting_down_) throw SupervisorError(SupervisorError::Kind::ShutDown, "shutting down");
      for (auto& instance : instances_of(name)) instance->start();
    });
  }

  void restart(const std::string& name) {
    call([&] {
      if (shutting_down_) throw SupervisorError(SupervisorError::Kind::ShutDown, "shutting down");
      for (auto& instance : instances_of(name)) instance->restart();
    });
  }

  void start_all() {
    call([&] {
      for (auto& program : programs_) start(program->spec.name);
    });
  }

  // Every instance of `name`, or of every program if null.
  void kill(const std::string* name) {
    call([&] {
      if (name != nullptr) {
        for (auto& instance : instances_of(*name)) instance->kill();
        return;
      }
      for (auto& program : instances_) {
        for (auto& instance : program) instance->kill();
      }
    });
  }

  // Waits for the instances to be stopped, unless called from the loop thread.
  void stop(const std::string* name) {
    std::promise<void> done;
    auto future = done.get_future();
    const bool on_loop = std::this_thread::get_id() == loop_thread_;
    call([&] {
      std::vector<detail::ManagedProcess*> targets;
      if (name != nullptr) {
        for (auto& instance : instances_of(*name)) targets.push_back(instance.get());
      } else {
        for (auto& program : instances_) {
          for (auto& instance : program) targets.push_back(instance.get());
        }
      }
      auto left = std::make_shared<std::size_t>(targets.size());
      auto finished = std::make_shared<std::promise<void>>(std::move(done));
      if (targets.empty()) finished->set_value();
      for (auto* instance : targets) {
        instance->stop([left, finished] {
          if (--*left == 0) finished->set_value();
        });
      }
    });
    if (!on_loop) future.wait();
  }

  std::vector<ProcessStatus> status() {
    return call([&] {
      std::vector<ProcessStatus> out;
      for (auto& program : instances_) {
        for (auto& instance : program) out.push_back(instance->status());
      }
      return out;
    });
  }

  std::uint64_t callback_errors() const noexcept { return callback_errors_.load(); }

 private:
  detail::Program* find(const std::string& name) {
    for (auto& program : programs_) {
      if (program->spec.name == name) return program.get();
    }
    return nullptr;
  }

  std::vector<std::unique_ptr<detail::ManagedProcess>>& instances_of(const std::string& name) {
    for (std::size_t i = 0; i < programs_.size(); ++i) {
      if (programs_[i]->spec.name == name) return instances_[i];
    }
    throw SupervisorError(SupervisorError::Kind::UnknownProgram,
                          "no program named \"" + name + "\"");
  }

  // Events are delivered from the loop's queue, after the step that made them: the callback
  // never runs in the middle of a transition, and may call back into the supervisor.
  void queue_event(SupervisorEvent event) {
    if (!options_.on_event) return;
    loop_.post([this, event = std::move(event)] {
      try {
        options_.on_event(event);
      } catch (...) {
        callback_errors_.fetch_add(1);
      }
    });
  }

  void check_shutdown() {
    if (!shutting_down_) return;
    for (auto& program : instances_) {
      for (auto& instance : program) {
        if (!instance->idle()) return;
      }
    }
    loop_.stop();
  }

  Options options_;
  detail::EventLoop loop_;
  detail::NotifySocket notify_;
  detail::ProcessHost host_;
  std::mt19937_64 rng_;
  std::vector<std::unique_ptr<detail::Program>> programs_;
  // instances_[i] are the instances of programs_[i]; destroyed before programs_ (they point
  // into them) and before loop_.
  std::vector<std::vector<std::unique_ptr<detail::ManagedProcess>>> instances_;
  std::unordered_map<int, detail::ManagedProcess*> by_pid_;
  std::atomic<std::uint64_t> callback_errors_{0};
  bool shutting_down_ = false;
  std::promise<void> started_;
  std::thread::id loop_thread_;
  std::thread thread_;
};

Supervisor::Supervisor() : Supervisor(Options{}) {}
Supervisor::Supervisor(Options options) : impl_(std::make_unique<Impl>(std::move(options))) {}
Supervisor::~Supervisor() = default;

void Supervisor::add(ProgramSpec spec) { impl_->add(std::move(spec)); }
void Supervisor::start(const std::string& name) { impl_->start(name); }
void Supervisor::stop(const std::string& name) { impl_->stop(&name); }
void Supervisor::restart(const std::string& name) { impl_->restart(name); }
void Supervisor::start_all() { impl_->start_all(); }
void Supervisor::stop_all() { impl_->stop(nullptr); }
void Supervisor::kill(const std::string& name) { impl_->kill(&name); }
void Supervisor::kill_all() { impl_->kill(nullptr); }
std::vector<ProcessStatus> Supervisor::status() const { return impl_->status(); }
std::uint64_t Supervisor::callback_errors() const noexcept { return impl_->callback_errors(); }

}  // namespace procpool
