// Rollout: the rolling replacement of a program's instances (rollout.hpp has the steps).

#include "rollout.hpp"

#include <utility>  // std::move

#include "procpool/supervisor.hpp"  // SupervisorError

namespace procpool::detail {

Rollout::Rollout(ProcessHost& host, ProgramEntry& entry, std::shared_ptr<const Program> next,
                 Options options, Retire retire, std::function<void()> kick)
    : host_(host),
      entry_(entry),
      from_(entry.program),
      to_(std::move(next)),
      target_(to_),
      options_(options),
      retire_(std::move(retire)),
      kick_(std::move(kick)),
      old_count_(entry.instances.size()) {
  program_stopped_ = !entry.instances.empty();
  for (const auto& instance : entry.instances) {
    if (instance->state() != ProgramState::Stopped) program_stopped_ = false;
  }
  if (options_.only_slot) {
    todo_.push_back(*options_.only_slot);
  } else {
    for (unsigned i = 0; i < to_->spec.numprocs; ++i) todo_.push_back(i);
    if (to_->spec.numprocs > old_count_) grown_.resize(to_->spec.numprocs - old_count_);
  }
}

Rollout::~Rollout() {
  for (auto& slot : active_) host_.loop->cancel(slot->timer);
}

std::size_t Rollout::concurrency() const noexcept {
  return options_.max_unavailable == 0 ? 1 : options_.max_unavailable;
}

void Rollout::abort(const std::string& why, bool kill) {
  // Committed, it only waits for old instances to be gone: it succeeded.
  if (committed_ && failure_.empty()) return;
  if (failure_.empty()) failure_ = why;
  aborted_ = true;
  abort_kill_ = abort_kill_ || kill;
}

void Rollout::retire(std::unique_ptr<ManagedProcess> process, bool kill,
                     std::function<void()> gone) {
  ++stopping_;
  retire_(std::move(process), kill, options_.stop_reason, [this, gone = std::move(gone)] {
    --stopping_;
    if (gone) gone();
  });
}

void Rollout::begin(unsigned index) {
  auto slot = std::make_unique<Slot>();
  slot->index = index;
  slot->fresh = std::make_unique<ManagedProcess>(host_, target_, index);
  if (index >= entry_.instances.size() && program_stopped_) {
    swap_in(*slot);  // a new slot of a stopped program: stopped too
    return;
  }
  if (index < entry_.instances.size()) {
    ManagedProcess& old = *entry_.instances[index];
    if (old.state() == ProgramState::Stopped) {
      // Stopped by hand, or given up: its successor takes the slot, stopped too.
      swap_in(*slot);
      return;
    }
    if (options_.max_unavailable > 0) {
      // Stop-first: launched by step() once the old instance is gone.
      old.stop([kick = kick_] { kick(); }, options_.stop_reason);
      active_.push_back(std::move(slot));
      return;
    }
  }
  Slot& added = *slot;
  active_.push_back(std::move(slot));  // before the launch arms a timer that points at it
  launch(added);
}

void Rollout::launch(Slot& slot) {
  slot.launched = true;
  try {
    slot.fresh->start();
  } catch (const SupervisorError& e) {
    slot.error = e.what();
    return;
  }
  slot.timer = host_.loop->after(options_.ready_timeout, [this, &slot] {
    slot.timer = 0;
    slot.timed_out = true;
    kick_();
  });
}

std::string Rollout::why_failed(const Slot& slot) const {
  const std::string name = slot.fresh->name() + " (new)";
  if (!slot.error.empty()) return slot.error;
  if (slot.timed_out) {
    return name + " was not ready within " + std::to_string(options_.ready_timeout.count()) + " ms";
  }
  const ProcessStatus status = slot.fresh->status();
  if (status.last_exit) {
    return name + " ended before it was ready: " + status.last_exit->ending() + " (pid " +
           std::to_string(status.last_exit->pid) + ")";
  }
  return name + " is " + to_string(status.state) + " instead of ready";
}

Rollout::Step Rollout::step(Slot& slot) {
  if (!slot.launched) {
    if (!entry_.instances[slot.index]->idle()) return Step::Waiting;
    launch(slot);
  }
  const ProgramState state = slot.fresh->state();
  if (state == ProgramState::Ready) {
    swap_in(slot);
    return Step::Done;
  }
  if (state == ProgramState::Starting && !slot.timed_out && slot.error.empty()) {
    return Step::Waiting;
  }
  if (rolling_back_) {
    // The old spec back, ready or not: its restart policy takes it from here.
    swap_in(slot);
    return Step::Done;
  }
  return Step::Failed;
}

void Rollout::swap_in(Slot& slot) {
  if (slot.index < old_count_) {
    std::unique_ptr<ManagedProcess> outgoing = std::move(entry_.instances[slot.index]);
    entry_.instances[slot.index] = std::move(slot.fresh);
    retire(std::move(outgoing), false);
    if (!rolling_back_) swapped_.push_back(slot.index);
  } else {
    grown_[slot.index - old_count_] = std::move(slot.fresh);
  }
}

void Rollout::fail(std::string why) {
  if (failure_.empty()) failure_ = std::move(why);
  for (auto& slot : active_) {
    host_.loop->cancel(slot->timer);
    auto fresh_gone = std::make_shared<bool>(!slot->fresh);
    if (slot->fresh) retire(std::move(slot->fresh), false, [fresh_gone] { *fresh_gone = true; });
    // Stop-first: its old instance was stopped to make room; it runs again, once the new one
    // is gone.
    if (slot->index < old_count_ && options_.max_unavailable > 0) {
      restart_when_stopped_.push_back({slot->index, fresh_gone});
    }
  }
  active_.clear();
  todo_.clear();
  for (auto& grown : grown_) {
    if (grown) retire(std::move(grown), false);
  }
  grown_.clear();
  rolling_back_ = true;
  target_ = from_;
  for (unsigned index : swapped_) todo_.push_back(index);
  swapped_.clear();
}

bool Rollout::advance() {
  if (aborted_) {
    for (auto& slot : active_) {
      host_.loop->cancel(slot->timer);
      if (slot->fresh) retire(std::move(slot->fresh), abort_kill_);
    }
    active_.clear();
    todo_.clear();
    restart_when_stopped_.clear();
    for (auto& grown : grown_) {
      if (grown) retire(std::move(grown), abort_kill_);
    }
    grown_.clear();
    committed_ = true;  // some slots may run the new spec: each instance keeps its own alive
    return stopping_ == 0;
  }
  bool progress = true;
  while (progress) {
    progress = false;
    for (std::size_t i = 0; i < active_.size(); ++i) {
      const Step result = step(*active_[i]);
      if (result == Step::Waiting) continue;
      if (result == Step::Failed) {
        fail(why_failed(*active_[i]));
      } else {
        host_.loop->cancel(active_[i]->timer);
        active_.erase(active_.begin() + static_cast<std::ptrdiff_t>(i));
      }
      progress = true;
      break;
    }
    while (active_.size() < concurrency() && !todo_.empty()) {
      const unsigned index = todo_.front();
      todo_.pop_front();
      begin(index);
      progress = true;
    }
  }
  for (auto it = restart_when_stopped_.begin(); it != restart_when_stopped_.end();) {
    ManagedProcess& old = *entry_.instances[it->index];
    if (old.state() != ProgramState::Stopped || !*it->fresh_gone) {
      ++it;
      continue;
    }
    try {
      old.start();
    } catch (const SupervisorError&) {
      // Reported (SpawnFailed); it stays stopped, as after any failed start.
    }
    it = restart_when_stopped_.erase(it);
  }
  if (active_.empty() && todo_.empty() && !committed_) commit();
  return committed_ && restart_when_stopped_.empty() && stopping_ == 0;
}

void Rollout::commit() {
  committed_ = true;
  if (!failure_.empty() || options_.only_slot) return;
  while (entry_.instances.size() > to_->spec.numprocs) {
    retire(std::move(entry_.instances.back()), false);
    entry_.instances.pop_back();
  }
  for (auto& grown : grown_) entry_.instances.push_back(std::move(grown));
  grown_.clear();
  entry_.program = to_;
}

}  // namespace procpool::detail
