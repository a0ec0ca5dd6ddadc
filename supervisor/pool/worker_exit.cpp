#include "pool_core.hpp"

#include <signal.h>     // SIGKILL
#include <sys/epoll.h>  // epoll_ctl
#include <sys/wait.h>   // waitpid

#include <cstdio>  // std::snprintf
#include <random>  // jitter
#include <string>  // messages
#include <vector>  // requeued tasks

#include "pool_clock.hpp"
#include "process_status.hpp"
#include "restart_tracker.hpp"

namespace procpool::detail {
using State = WorkerSlot::State;

// The supervisor thread read the worker's pipes just before (its last words are in the
// stderr tail: at most a pipe's worth is left once the writer is gone).
void PoolCore::reap(WorkerSlot& slot) {
  const std::optional<ExitStatus> status = slot.process.child.peek_exit();
  if (!status) return;  // pidfd readable means exited; be safe anyway
  // The worker's own children, if any, while its zombie still keeps the pgid from reuse.
  slot.process.child.signal_group(SIGKILL);
  ::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_DEL, slot.process.child.pidfd(), nullptr);
  if (slot.channel)
    ::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_DEL, slot.channel->doorbell_fd(), nullptr);
  slot.process.child.try_reap();
  const std::string last_words = slot.process.err ? slot.process.err->tail().text() : std::string();
  retire_outputs_locked(slot);
  on_exit_locked(slot, *status, last_words);
}

void PoolCore::on_exit_locked(WorkerSlot& slot, const ExitStatus& exit,
                              const std::string& last_words) {
  const auto now = Clock::now();
  const bool intended = slot.state() == State::kStopping && !slot.process.killed && exit.clean();
  const bool was_ready =
      slot.process.ready_at >= slot.process.started && slot.state() != State::kStarting;
  const int pid = slot.pid();
  const bool busy = !slot.load.inflight.empty();
  const TaskRecord* running = charged_task_locked(slot);
  // The crash report: what ended it, how long it had been up, what it was doing, its last words.
  char uptime[32];
  std::snprintf(uptime, sizeof uptime, "%.3f s", seconds_between(slot.process.started, now));
  // Appended piece by piece: GCC 12 at -O2 warns (-Wrestrict, a false positive, GCC bug 105329)
  // on a literal plus a temporary string.
  std::string what = describe_slot(slot);
  if (slot.process.killed) {
    what += " was killed: ";
    what += slot.process.kill_reason;
  } else {
    what += ' ';
    what += exit.describe();
  }
  what += std::string(", up ") + uptime;
  if (running != nullptr) {
    what += ", running a \"" + handler_name_locked(running->handler) + "\" task (attempt " +
            std::to_string(running->attempts) + " of " + std::to_string(running->max_attempts) +
            ")";
  } else if (busy) {
    what += ", " + std::to_string(slot.load.inflight.size()) + " task(s) on board, none running";
  }
  if (!last_words.empty()) what += "; last stderr lines:\n" + last_words;

  // Tasks on board: answers published before the exit were drained already. The one task that
  // was running spent an attempt. The rest never started, or finished with the answer
  // unpublished: they go back to the front of the queue as they were.
  std::vector<std::uint32_t> requeue;
  for (const std::uint32_t index : slot.load.inflight) {
    TaskRecord& task = tasks_[index];
    if (task.abandoned) {
      free_task_locked(index);
      continue;
    }
    running_ -= tasks_in(task);
    task.slot = -1;
    task.began = Clock::time_point{};
    if (terminating_) {  // Pool::terminate(): nothing is retried
      resolve_locked(index, {},
                     TaskError(TaskError::Kind::ShuttingDown, "pool terminated: " + what, pid));
      free_task_locked(index);
      continue;
    }
    if (!task.members.empty()) {  // coalesced: its members go again, alone (coalescing.cpp)
      requeue.push_back(index);
      continue;
    }
    const bool timed_out = slot.process.timed_out_task == index;
    const bool charged = !intended && &task == running;
    if (charged) {
      if (task.attempts >= task.max_attempts) {
        const auto kind = timed_out                      ? TaskError::Kind::Timeout
                          : slot.process.memory_exceeded ? TaskError::Kind::MemoryLimit
                                                         : TaskError::Kind::WorkerCrashed;
        std::string message = what;
        if (task.max_attempts > 1) {
          message = "task failed on all " + std::to_string(task.attempts) +
                    " attempts (poison); last: " + what;
        }
        resolve_locked(index, {}, TaskError(kind, message, pid));
        free_task_locked(index);
        continue;
      }
      requeue.push_back(index);  // retried: this attempt is spent
      continue;
    }
    if (!task.payload_stored) {  // sent without a kept copy (large, max_attempts 1)
      resolve_locked(index, {},
                     TaskError(TaskError::Kind::WorkerCrashed,
                               "the worker died before starting the task, and its payload was not "
                               "kept for a retry (max_attempts 1): " +
                                   what,
                               pid));
      free_task_locked(index);
      continue;
    }
    --task.attempts;  // never started: this dispatch does not count
    ++task.uncharged_deaths;
    requeue.push_back(index);
  }
  for (auto it = requeue.rbegin(); it != requeue.rend(); ++it) {
    if (!tasks_[*it].members.empty()) {
      requeue_members_locked(*it, true);
    } else {
      queue_.push_front(tasks_[*it].priority, *it);
    }
  }
  slot.load.inflight.clear();
  slot.load.on_board = {};
  slot.channel.reset();
  slot.process.reaped();

  // What the death says about the program (RestartTracker): only a start that never served
  // counts towards a crash loop.
  DeathKind death = DeathKind::kBroken;
  if (intended || (slot.process.killed && (slot.process.kill_cause == KillCause::kForTask ||
                                           slot.process.kill_cause == KillCause::kStop))) {
    death = DeathKind::kIntended;
  } else if (!was_ready) {
    death = DeathKind::kBroken;
  } else if (now - slot.process.ready_at >= options_.restart.min_uptime) {
    death = DeathKind::kStable;
  } else if (busy || slot.load.last_answered_id != 0 ||
             (!slot.process.killed && exit.signaled && exit.signal == SIGKILL)) {
    // With tasks on board the running one is charged. A worker that answered a task has shown
    // the program can serve (a protocol violation in an answer is that task's). An idle worker
    // SIGKILLed from outside (an operator, a chaos test) says nothing about the program. All
    // restart at once.
    death = DeathKind::kBusy;
  }
  PoolEvent exited;
  exited.kind = PoolEvent::Kind::WorkerExited;
  exited.pid = pid;
  exited.message = what;
  exited.exit_code = exit.signaled ? -1 : exit.code;
  exited.signal = exit.signaled ? exit.signal : 0;
  exited.counted = death == DeathKind::kBroken;
  if (slot.process.killed && slot.process.kill_cause == KillCause::kProtocolViolation) {
    exited.violation = slot.process.violation;
  }
  emit_locked(slot, std::move(exited));

  if (intended) {
    // Recycled or scaled down: a recycled slot below the minimum comes back at once.
    slot.process.empty();
    slot.process.restart.on_death(DeathKind::kIntended, 0);
    return;
  }
  if (failure_ || (stopping_ && (queue_.empty() || now >= shutdown_deadline_))) {
    slot.process.empty();  // shutting down: no restart unless queued work still needs one
    return;
  }
  if (replaced_locked(slot)) {
    // Due for recycling, it died before its replacement was READY: that replacement is its
    // restart (recycling.cpp), and the slot stays empty.
    ++restarts_;
    slot.process.empty();
    slot.process.restart.on_death(death, 0);
    return;
  }
  ++restarts_;
  ++slot.process.restarts;
  schedule_restart_locked(slot, death, what, now);
}

// Puts the slot in backoff after a death or a failed spawn: at once unless the death shows the
// program is broken, else after the tracker's jittered backoff. Reports a crash loop, and gives
// up (fails the pool) only if RestartPolicy::give_up_after asks for it, or while the pool is
// still starting (the constructor throws rather than retry for its caller).
void PoolCore::schedule_restart_locked(WorkerSlot& slot, DeathKind death, const std::string& what,
                                       Clock::time_point now) {
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  const auto delay = slot.process.restart.on_death(death, uniform(rng_));
  const auto failures = static_cast<unsigned>(slot.process.restart.broken_in_a_row());
  if (death == DeathKind::kBroken && slot.process.restart.crash_looping() &&
      !slot.process.crash_loop_reported) {
    slot.process.crash_loop_reported = true;
    PoolEvent loop;
    loop.kind = PoolEvent::Kind::CrashLoop;
    loop.message = what;
    loop.consecutive_failures = failures;
    emit_locked(slot, std::move(loop));
  }
  if (failures == 0) slot.process.crash_loop_reported = false;
  const std::string in_a_row = " (" + std::to_string(failures) + " failures in a row)";
  if (slot.process.restart.gave_up()) {
    slot.process.empty();
    fail_pool_locked(what + in_a_row);
    return;
  }
  if (!started_up_ && slot.process.restart.crash_looping()) {
    slot.process.empty();
    fail_pool_locked(what + in_a_row);
    return;
  }
  PoolEvent restarting;
  restarting.kind = PoolEvent::Kind::WorkerRestarting;
  restarting.delay = delay;
  restarting.consecutive_failures = failures;
  emit_locked(slot, std::move(restarting));
  slot.process.back_off(now + delay);
}

}  // namespace procpool::detail
