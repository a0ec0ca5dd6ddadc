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
    std::shared_ptr<const detail::Program> next =
        make_program(std::move(spec), entry.program.get());
    auto finished = std::make_shared<std::promise<std::optional<Failure>>>(std::move(done));
    // A memory recycle in progress is interrupted; the update starts once it is over.
    interrupt_rollout(entry, "updated", false);
    const std::string name = next->spec.name;
    when_no_rollout(entry, [this, name, next, options, finished] {
      detail::ProgramEntry* target = find(name);
      if (target == nullptr || shutting_down_) {
        const Failure failure{true, SupervisorError::Kind::Interrupted,
                              name + " was removed during its update", 0, 0};
        finished->set_value(failure);
        return;
      }
      detail::Rollout::Options rollout;
      rollout.max_unavailable = options.max_unavailable;
      rollout.ready_timeout = options.ready_timeout;
      start_rollout(*target, next, rollout);
      rollout_done_[target->rollout.get()] = [finished](const Failure* failure) {
        finished->set_value(failure != nullptr ? std::optional<Failure>(*failure) : std::nullopt);
      };
    });
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
    auto finished = std::make_shared<std::promise<void>>(std::move(done));
    interrupt_rollout(entry, "removed", false);
    when_no_rollout(entry, [this, name, finished] {
      detail::ProgramEntry* target = find(name);
      if (target == nullptr) {
        finished->set_value();
        return;
      }
      std::vector<std::unique_ptr<detail::ManagedProcess>> instances = std::move(target->instances);
      std::erase_if(entries_, [&](const auto& e) { return e.get() == target; });
      auto left = std::make_shared<std::size_t>(instances.size());
      if (instances.empty()) finished->set_value();
      for (auto& instance : instances) {
        retire(std::move(instance), false, KillReason::Stop, [left, finished] {
          if (--*left == 0) finished->set_value();
        });
      }
    });
  });
  if (!on_loop) future.wait();
}

void Supervisor::Impl::retire(std::unique_ptr<detail::ManagedProcess> process, bool kill,
                              KillReason reason, std::function<void()> gone) {
  detail::ManagedProcess* raw = process.get();
  retiring_.push_back({std::move(process)});
  if (kill) raw->kill();
  raw->stop(
      [this, gone = std::move(gone)] {
        if (gone) gone();
        kick();  // destroyed from there
      },
      reason);
}

void Supervisor::Impl::start_rollout(detail::ProgramEntry& entry,
                                     std::shared_ptr<const detail::Program> next,
                                     detail::Rollout::Options options) {
  entry.rollout = std::make_unique<detail::Rollout>(
      host_, entry, std::move(next), options,
      [this](std::unique_ptr<detail::ManagedProcess> process, bool kill, KillReason reason,
             std::function<void()> gone) {
        retire(std::move(process), kill, reason, std::move(gone));
      },
      [this] { kick(); });
  ++rollouts_;
  kick();
}

void Supervisor::Impl::when_no_rollout(detail::ProgramEntry& entry, std::function<void()> action) {
  if (!entry.rollout && entry.after_rollout.empty()) {
    action();
    return;
  }
  entry.after_rollout.push_back(std::move(action));
  kick();
}

// Stopped at once: its new instances not yet swapped in are retired now (so that a stop() that
// follows waits for them too); what waited for the rollout runs from the next posted step.
void Supervisor::Impl::interrupt_rollout(detail::ProgramEntry& entry, const std::string& why,
                                         bool kill) {
  if (!entry.rollout) return;
  entry.rollout->abort(entry.program->spec.name + " was " + why + " during its update", kill);
  if (entry.rollout->advance()) finish_rollout(entry);
  kick();
}

void Supervisor::Impl::finish_rollout(detail::ProgramEntry& entry) {
  std::unique_ptr<detail::Rollout> finished = std::move(entry.rollout);
  --rollouts_;
  const auto waiter = rollout_done_.find(finished.get());
  if (waiter == rollout_done_.end()) return;
  if (finished->failure().empty()) {
    waiter->second(nullptr);
  } else {
    const SupervisorError::Kind kind = !finished->interrupted() ? SupervisorError::Kind::RolledBack
                                       : shutting_down_         ? SupervisorError::Kind::ShutDown
                                                        : SupervisorError::Kind::Interrupted;
    const Failure failure{true, kind, finished->failure(), 0, 0};
    waiter->second(&failure);
  }
  rollout_done_.erase(waiter);
}

bool Supervisor::Impl::recycle(detail::ManagedProcess& process) {
  if (shutting_down_) return false;
  for (auto& entry : entries_) {
    const unsigned slot = process.instance();
    if (slot >= entry->instances.size() || entry->instances[slot].get() != &process) continue;
    // Being recycled already: wait for it. Being updated: it is replaced anyway, by a stop.
    if (entry->rollout) return entry->rollout->recycling();
    if (!entry->after_rollout.empty()) return false;
    detail::Rollout::Options options;
    options.only_slot = slot;
    options.ready_timeout = process.program()->spec.start_timeout;
    options.stop_reason = KillReason::MemorySoft;
    // Its own spec (after an interrupted update it may not be the program's).
    start_rollout(*entry, process.program(), options);
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
  // By index: what runs here (an action waiting for a rollout, a sink flushed by a kill) may
  // add or remove programs.
  for (std::size_t i = 0; i < entries_.size(); ++i) {
    detail::ProgramEntry* entry = entries_[i].get();
    if (entry->rollout && entry->rollout->advance()) finish_rollout(*entry);
    if (entry->rollout || entry->after_rollout.empty()) continue;
    std::function<void()> action = std::move(entry->after_rollout.front());
    entry->after_rollout.erase(entry->after_rollout.begin());
    action();  // may start a rollout, or remove the entry
    kick();    // the rest, later
  }
  std::erase_if(retiring_, [](const Retiring& r) { return r.process->idle(); });
  check_shutdown();
}

}  // namespace procpool
