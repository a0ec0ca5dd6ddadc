#pragma once

// A rolling replacement of a program's instances by instances of another Program: a changed
// spec (Supervisor::update, `procpool reload`), or one instance by a fresh run of the same spec
// (memory recycling). It is the one owner of that state machine (docs/supervisor.md, "Rolling
// updates"):
//
//   for each slot: start the new instance -> wait until it is Ready (or fails, or the ready
//   timeout passes) -> swap it into the slot -> stop the old one.
//
// With max_unavailable = 0, one slot at a time and the old instance runs until its successor is
// ready (surge). With max_unavailable = k > 0, up to k slots at a time and each old instance is
// stopped first (for programs of which two copies cannot run at once, on one port say).
//
// A new instance that fails rolls the update back: the new instances not swapped in yet are
// stopped, the slots already swapped get the old spec back by the same steps (a failure then is
// not rolled back again: the instance stays under its restart policy), and the program keeps
// its old spec. Runs on the supervisor's loop thread only; advance() is called from a posted
// task, never inside a transition, so it may destroy and swap instances.

#include <chrono>      // ready timeout
#include <cstdint>     // std::uint8_t
#include <deque>       // slots to do
#include <functional>  // callbacks
#include <memory>      // instances
#include <optional>    // one slot only
#include <string>      // failure
#include <vector>      // slots

#include "event_loop.hpp"
#include "managed_process.hpp"

namespace procpool::detail {

class Rollout;

// A program and its instances, as the supervisor holds them.
// Each instance keeps the Program it runs alive itself: after a rollout that was interrupted
// halfway, some run the old spec and some the new one.
struct ProgramEntry {
  std::shared_ptr<const Program> program;  // what a start or a new slot runs
  std::vector<std::unique_ptr<ManagedProcess>> instances;
  std::unique_ptr<Rollout> rollout;  // at most one at a time
  // Run once the rollout is over (an update or a remove that interrupted a recycle).
  std::vector<std::function<void()>> after_rollout;
};

class Rollout {
 public:
  struct Options {
    unsigned max_unavailable = 0;
    std::chrono::milliseconds ready_timeout{60000};
    // Only this slot (memory recycling); else every slot, and numprocs may change.
    std::optional<unsigned> only_slot;
    // The outgoing instances are stopped for this reason (MemorySoft for a recycle).
    KillReason stop_reason = KillReason::Stop;
  };
  // Hands an instance over to be stopped (killed if `kill`) and destroyed once idle; `gone`
  // runs once it has stopped, from a posted task or at once.
  using Retire = std::function<void(std::unique_ptr<ManagedProcess>, bool kill, KillReason reason,
                                    std::function<void()> gone)>;

  // `kick` posts a call to advance() (coalesced by the supervisor).
  Rollout(ProcessHost& host, ProgramEntry& entry, std::shared_ptr<const Program> next,
          Options options, Retire retire, std::function<void()> kick);
  ~Rollout();
  Rollout(const Rollout&) = delete;
  Rollout& operator=(const Rollout&) = delete;

  // Steps on. True once finished: every old instance it stopped is gone; failure() is then
  // empty if the program now runs the new spec.
  bool advance();
  // Ends it at the next advance(): the new instances not swapped in yet are stopped (killed if
  // `kill`), nothing is rolled back, and instances stopped to make room are left stopped.
  void abort(const std::string& why, bool kill);
  const std::string& failure() const noexcept { return failure_; }
  bool interrupted() const noexcept { return aborted_; }
  // A memory recycle (one slot, the same spec), not an update.
  bool recycling() const noexcept { return options_.only_slot.has_value(); }

 private:
  struct Slot {
    unsigned index = 0;
    std::unique_ptr<ManagedProcess> fresh;
    bool old_stopping = false;  // stop-first: waiting for the old instance to be gone
    bool launched = false;
    bool timed_out = false;
    std::string error;  // its start() failed
    EventLoop::TimerId timer = 0;
  };
  enum class Step : std::uint8_t { Waiting, Done, Failed };

  void begin(unsigned index);
  void launch(Slot& slot);
  Step step(Slot& slot);
  std::string why_failed(const Slot& slot) const;
  void swap_in(Slot& slot);
  void fail(std::string why);
  // `gone`: also told once it has stopped.
  void retire(std::unique_ptr<ManagedProcess> process, bool kill, std::function<void()> gone = {});
  std::size_t concurrency() const noexcept;
  void commit();

  ProcessHost& host_;
  ProgramEntry& entry_;
  std::shared_ptr<const Program> from_;    // the spec the program had
  std::shared_ptr<const Program> to_;      // the spec it is updated to
  std::shared_ptr<const Program> target_;  // the new instances' (to_, or from_ rolling back)
  Options options_;
  Retire retire_;
  std::function<void()> kick_;
  std::size_t old_count_ = 0;  // numprocs before
  std::deque<unsigned> todo_;
  std::vector<std::unique_ptr<Slot>> active_;
  std::vector<unsigned> swapped_;  // slots < old_count_ swapped so far
  // Old instances stopped first for slots the rollout gave up: started again once they are
  // stopped and the slot's new instance is gone (never two copies at once).
  struct Restart {
    unsigned index;
    std::shared_ptr<bool> fresh_gone;
  };
  std::vector<Restart> restart_when_stopped_;
  bool program_stopped_ = false;  // every old instance was stopped: new slots stay stopped
  std::vector<std::unique_ptr<ManagedProcess>> grown_;  // slots >= old_count_, by index
  std::size_t stopping_ = 0;                            // retired instances not gone yet
  bool rolling_back_ = false;
  bool committed_ = false;
  bool aborted_ = false;
  bool abort_kill_ = false;
  std::string failure_;
};

}  // namespace procpool::detail
