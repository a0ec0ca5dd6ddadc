// procpool::Supervisor: the public face of the process layer (supervisor_impl.hpp), its life
// cycle and the per-program calls. Rolling updates, removal and recycling are in
// supervisor_update.cpp.

#include "procpool/supervisor.hpp"

#include <pthread.h>    // pthread_sigmask
#include <signal.h>     // SIGPIPE
#include <sys/epoll.h>  // EPOLLIN

#include "supervisor_impl.hpp"

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
    case SupervisorError::Kind::Busy:
      return "busy";
    case SupervisorError::Kind::RolledBack:
      return "rolled_back";
    case SupervisorError::Kind::Interrupted:
      return "interrupted";
  }
  return "unknown";
}

Supervisor::Impl::Impl(Options options)
    : options_(std::move(options)), rng_(std::random_device{}()) {
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
  host_.changed = [this] {
    check_shutdown();
    if (rollouts_ != 0) kick();
  };
  host_.recycle = [this](detail::ManagedProcess& process) { return recycle(process); };
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

Supervisor::Impl::~Impl() {
  call([this] {
    shutting_down_ = true;
    for (auto& entry : entries_) {
      interrupt_rollout(*entry, "the supervisor is shutting down", false);
      for (auto& instance : entry->instances) instance->stop({});
    }
    check_shutdown();
  });
  thread_.join();
  // Anything left (nothing, after a graceful stop) is SIGKILLed and reaped here.
  retiring_.clear();
  entries_.clear();
}

void Supervisor::Impl::check_spec(const ProgramSpec& spec) {
  const auto bad = [&](const std::string& why) {
    return SupervisorError(SupervisorError::Kind::BadSpec, "program \"" + spec.name + "\": " + why);
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
  if (spec.umask < -1 || spec.umask > 0777) throw bad("umask must be -1 or 0 to 0777");
  if ((!spec.user.empty() || !spec.group.empty()) && spec.readiness == ReadinessMode::Notify) {
    throw bad("readiness Notify with another user or group: the notify socket is private");
  }
}

// `previous`: the program it replaces, whose log files it goes on writing through the same
// writers when they name the same file the same way (one writer per file, one rotation).
std::shared_ptr<const detail::Program> Supervisor::Impl::make_program(
    ProgramSpec spec, const detail::Program* previous) {
  auto program = std::make_shared<detail::Program>();
  const auto same_file = [](const OutputSink& a, const OutputSink& b) {
    return !a.file.empty() && a.file == b.file && a.max_bytes == b.max_bytes && a.keep == b.keep;
  };
  try {
    program->stdout_sinks = detail::SinkSet::make(spec.stdout_sink);
    program->stderr_sinks = detail::SinkSet::make(spec.stderr_sink);
    if (previous != nullptr) {
      if (same_file(spec.stdout_sink, previous->spec.stdout_sink)) {
        program->stdout_sinks->file = previous->stdout_sinks->file;
      }
      if (same_file(spec.stderr_sink, previous->spec.stderr_sink)) {
        program->stderr_sinks->file = previous->stderr_sinks->file;
      }
    }
    // One file for both streams must be one writer: two would each rotate it on their own
    // count of its size.
    if (!spec.stderr_sink.file.empty() && spec.stderr_sink.file == spec.stdout_sink.file) {
      program->stderr_sinks->file = program->stdout_sinks->file;
    }
  } catch (const SystemError& e) {
    throw SupervisorError(SupervisorError::Kind::BadSpec,
                          "program \"" + spec.name + "\": output sink: " + e.what(), 0, e.code());
  }
  program->credentials = detail::resolve_credentials(spec);
  program->spec = std::move(spec);
  return program;
}

void Supervisor::Impl::add(ProgramSpec spec) {
  check_spec(spec);
  call([&] {
    if (shutting_down_) throw SupervisorError(SupervisorError::Kind::ShutDown, "shutting down");
    if (find(spec.name) != nullptr) {
      throw SupervisorError(SupervisorError::Kind::DuplicateProgram,
                            "program \"" + spec.name + "\" already added");
    }
    auto entry = std::make_unique<detail::ProgramEntry>();
    entry->program = make_program(std::move(spec), nullptr);
    for (unsigned i = 0; i < entry->program->spec.numprocs; ++i) {
      entry->instances.push_back(
          std::make_unique<detail::ManagedProcess>(host_, entry->program, i));
    }
    entries_.push_back(std::move(entry));
  });
}

void Supervisor::Impl::throw_if_updating(const detail::ProgramEntry& entry) const {
  if (entry.rollout && !entry.rollout->recycling()) {
    throw SupervisorError(SupervisorError::Kind::Busy,
                          "program \"" + entry.program->spec.name + "\" is being updated");
  }
}

void Supervisor::Impl::start(const std::string& name) {
  call([&] {
    if (shutting_down_) throw SupervisorError(SupervisorError::Kind::ShutDown, "shutting down");
    detail::ProgramEntry& entry = entry_of(name);
    throw_if_updating(entry);
    for (auto& instance : entry.instances) instance->start();
  });
}

void Supervisor::Impl::restart(const std::string& name) {
  call([&] {
    if (shutting_down_) throw SupervisorError(SupervisorError::Kind::ShutDown, "shutting down");
    detail::ProgramEntry& entry = entry_of(name);
    throw_if_updating(entry);
    interrupt_rollout(entry, "restarted", false);  // a recycle in progress
    for (auto& instance : entry.instances) instance->restart();
  });
}

void Supervisor::Impl::start_all() {
  call([&] {
    for (auto& entry : entries_) start(entry->program->spec.name);
  });
}

void Supervisor::Impl::kill(const std::string* name) {
  call([&] {
    if (name != nullptr) (void)entry_of(*name);  // UnknownProgram
    for (auto& entry : entries_) {
      if (name != nullptr && entry->program->spec.name != *name) continue;
      interrupt_rollout(*entry, "killed", true);
      for (auto& instance : entry->instances) instance->kill();
    }
    // Those replaced or removed and still stopping: now too.
    for (Retiring& retiring : retiring_) {
      if (name == nullptr || retiring.process->program()->spec.name == *name) {
        retiring.process->kill();
      }
    }
  });
}

void Supervisor::Impl::stop(const std::string* name) {
  std::promise<void> done;
  auto future = done.get_future();
  const bool on_loop = std::this_thread::get_id() == loop_thread_;
  call([&] {
    std::vector<detail::ManagedProcess*> targets;
    if (name != nullptr) (void)entry_of(*name);  // UnknownProgram
    for (auto& entry : entries_) {
      if (name != nullptr && entry->program->spec.name != *name) continue;
      interrupt_rollout(*entry, "stopped", false);
      for (auto& instance : entry->instances) targets.push_back(instance.get());
    }
    // Those replaced (an interrupted update's new ones too) must be gone as well.
    for (Retiring& retiring : retiring_) {
      if (name == nullptr || retiring.process->program()->spec.name == *name) {
        targets.push_back(retiring.process.get());
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

std::vector<ProcessStatus> Supervisor::Impl::status() {
  return call([&] {
    std::vector<ProcessStatus> out;
    for (auto& entry : entries_) {
      for (auto& instance : entry->instances) out.push_back(instance->status());
    }
    return out;
  });
}

detail::ProgramEntry* Supervisor::Impl::find(const std::string& name) noexcept {
  for (auto& entry : entries_) {
    if (entry->program->spec.name == name) return entry.get();
  }
  return nullptr;
}

detail::ProgramEntry& Supervisor::Impl::entry_of(const std::string& name) {
  if (detail::ProgramEntry* entry = find(name)) return *entry;
  throw SupervisorError(SupervisorError::Kind::UnknownProgram, "no program named \"" + name + "\"");
}

void Supervisor::Impl::queue_event(SupervisorEvent event) {
  if (!options_.on_event) return;
  loop_.post([this, event = std::move(event)] {
    try {
      options_.on_event(event);
    } catch (...) {
      callback_errors_.fetch_add(1);
    }
  });
}

void Supervisor::Impl::check_shutdown() {
  if (!shutting_down_ || rollouts_ != 0 || !retiring_.empty()) return;
  for (auto& entry : entries_) {
    for (auto& instance : entry->instances) {
      if (!instance->idle()) return;
    }
  }
  loop_.stop();
}

Supervisor::Supervisor() : Supervisor(Options{}) {}
Supervisor::Supervisor(Options options) : impl_(std::make_unique<Impl>(std::move(options))) {}
Supervisor::~Supervisor() = default;

void Supervisor::add(ProgramSpec spec) { impl_->add(std::move(spec)); }
void Supervisor::start(const std::string& name) { impl_->start(name); }
void Supervisor::stop(const std::string& name) { impl_->stop(&name); }
void Supervisor::restart(const std::string& name) { impl_->restart(name); }
void Supervisor::update(ProgramSpec spec, UpdateOptions options) {
  impl_->update(std::move(spec), options);
}
void Supervisor::remove(const std::string& name) { impl_->remove(name); }
void Supervisor::start_all() { impl_->start_all(); }
void Supervisor::stop_all() { impl_->stop(nullptr); }
void Supervisor::kill(const std::string& name) { impl_->kill(&name); }
void Supervisor::kill_all() { impl_->kill(nullptr); }
std::vector<ProcessStatus> Supervisor::status() const { return impl_->status(); }
std::uint64_t Supervisor::callback_errors() const noexcept { return impl_->callback_errors(); }

}  // namespace procpool
