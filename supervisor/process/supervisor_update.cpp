// procpool::Supervisor's rolling updates, removal and memory recycling: the supervisor's side
// of rollout.hpp. Retired instances (replaced or removed) are stopped and destroyed once idle,
// from a posted task, never inside one of their own steps.

#include <algorithm>  // std::erase_if

#include "supervisor_impl.hpp"

namespace procpool {

void Supervisor::Impl::update(ProgramSpec spec, UpdateOptions options) {
  check_spec(spec);
  std::promise<std::optional<Failure>> done;
  auto future = done.get_future();
  const bool on_loop = std::this_thread::get_id() == loop_thread_;
  call([&] {
    if (shutting_down_) throw SupervisorError(SupervisorError::Kind::ShutDown, "shutting down");
    detail::ProgramEntry& entry = entry_of(spec.name);
    throw_if_updating(entry);
    interrupt_rollout(entry, "updated", false);  // a recycle in progress
    if (entry.rollout) {
      // The interrupted recycle has not finished yet: the caller may try again at once.
      throw SupervisorError(SupervisorError::Kind::Busy,
                            "program \"" + spec.name + "\" is finishing a memory recycle");
    }
    std::shared_ptr<detail::Program> next = make_program(std::move(spec), entry.program.get());
    detail::Rollout::Options rollout;
    rollout.max_unavailable = options.max_unavailable;
    rollout.ready_timeout = options.ready_timeout;
    start_rollout(entry, std::move(next), rollout);
    auto finished = std::make_shared<std::promise<std::optional<Failure>>>(std::move(done));
    rollout_done_[entry.rollout.get()] = [finished](const Failure* failure) {
      finished->set_value(failure != nullptr ? std::optional<Failure>(*failure) : std::nullopt);
    };
  });
  if (on_loop) return;
  const std::optional<Failure> failure = future.get();
  if (failure) throw SupervisorError(failure->kind, failure->message);
}

void Supervisor::Impl::remove(const std::string& name) {
  std::promise<void> done;
  auto future = done.get_future();
  const bool on_loop = std::this_thread::get_id() == loop_thread_;
  call([&] {
    detail::ProgramEntry& entry = entry_of(name);
    interrupt_rollout(entry, "removed", false);
    if (entry.rollout) {
      throw SupervisorError(SupervisorError::Kind::Busy,
                            "program \"" + name + "\" is finishing an update; try again");
    }
    auto left = std::make_shared<std::size_t>(entry.instances.size());
    auto finished = std::make_shared<std::promise<void>>(std::move(done));
    std::vector<std::unique_ptr<detail::ManagedProcess>> instances = std::move(entry.instances);
    std::shared_ptr<detail::Program> program = entry.program;
    std::shared_ptr<detail::Program> other = entry.other;
    std::erase_if(entries_, [&](const auto& e) { return e.get() == &entry; });
    if (instances.empty()) finished->set_value();
    for (auto& instance : instances) {
      // After an interrupted update an instance may run the other spec: keep both alive.
      std::shared_ptr<detail::Program> owner =
          &instance->program() == program.get() ? program : other;
      retire(std::move(owner), std::move(instance), false, KillReason::Stop, [left, finished] {
        if (--*left == 0) finished->set_value();
      });
    }
  });
  if (!on_loop) future.wait();
}

void Supervisor::Impl::retire(std::shared_ptr<detail::Program> program,
                              std::unique_ptr<detail::ManagedProcess> process, bool kill,
                              KillReason reason, std::function<void()> gone) {
  detail::ManagedProcess* raw = process.get();
  retiring_.push_back({std::move(program), std::move(process)});
  if (kill) raw->kill();
  raw->stop(
      [this, gone = std::move(gone)] {
        if (gone) gone();
        kick();  // destroyed from there
      },
      reason);
}

void Supervisor::Impl::start_rollout(detail::ProgramEntry& entry,
                                     std::shared_ptr<detail::Program> next,
                                     detail::Rollout::Options options) {
  entry.rollout = std::make_unique<detail::Rollout>(
      host_, entry, std::move(next), options,
      [this](std::shared_ptr<detail::Program> program,
             std::unique_ptr<detail::ManagedProcess> process, bool kill, KillReason reason,
             std::function<void()> gone) {
        retire(std::move(program), std::move(process), kill, reason, std::move(gone));
      },
      [this] { kick(); });
  ++rollouts_;
  kick();
}

void Supervisor::Impl::interrupt_rollout(detail::ProgramEntry& entry, const std::string& why,
                                         bool kill) {
  if (!entry.rollout) return;
  entry.rollout->abort(entry.program->spec.name + " was " + why + " during its update", kill);
  kick();
}

bool Supervisor::Impl::recycle(detail::ManagedProcess& process) {
  if (shutting_down_) return false;
  for (auto& entry : entries_) {
    const unsigned slot = process.instance();
    if (slot >= entry->instances.size() || entry->instances[slot].get() != &process) continue;
    // Being recycled already: wait for it. Being updated: it is replaced anyway, by a stop.
    if (entry->rollout) return entry->rollout->recycling();
    detail::Rollout::Options options;
    options.only_slot = slot;
    options.ready_timeout = entry->program->spec.start_timeout;
    options.stop_reason = KillReason::MemorySoft;
    start_rollout(*entry, entry->program, options);
    return true;
  }
  return false;
}

void Supervisor::Impl::kick() {
  if (kicked_) return;
  kicked_ = true;
  loop_.post([this] {
    kicked_ = false;
    advance_rollouts();
  });
}

void Supervisor::Impl::advance_rollouts() {
  for (auto& entry : entries_) {
    if (!entry->rollout || !entry->rollout->advance()) continue;
    std::unique_ptr<detail::Rollout> finished = std::move(entry->rollout);
    --rollouts_;
    const auto waiter = rollout_done_.find(finished.get());
    if (waiter == rollout_done_.end()) continue;
    if (finished->failure().empty()) {
      waiter->second(nullptr);
    } else {
      const Failure failure{true,
                            finished->interrupted() ? shutting_down_
                                                          ? SupervisorError::Kind::ShutDown
                                                          : SupervisorError::Kind::Interrupted
                                                    : SupervisorError::Kind::RolledBack,
                            finished->failure(), 0, 0};
      waiter->second(&failure);
    }
    rollout_done_.erase(waiter);
  }
  std::erase_if(retiring_, [](const Retiring& r) { return r.process->idle(); });
  check_shutdown();
}

}  // namespace procpool
