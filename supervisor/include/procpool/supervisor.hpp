#pragma once
#include "procpool/detail/require_cxx20.hpp"

// procpool::Supervisor: long-running programs kept running, as supervisord or PM2 do, embedded
// in the application (docs/supervisor.md). No tasks, no rings: see procpool::Pool for those.

#include <chrono>      // UpdateOptions
#include <cstdint>     // std::uint64_t
#include <functional>  // std::function
#include <memory>      // std::unique_ptr
#include <string>      // std::string
#include <vector>      // std::vector

#include "procpool/error.hpp"
#include "procpool/program_spec.hpp"
#include "procpool/program_status.hpp"

namespace procpool {

class SupervisorError : public Error {
 public:
  enum class Kind : std::uint8_t {
    UnknownProgram,    // no program of that name
    DuplicateProgram,  // add() of a name already there
    BadSpec,           // empty name or command, numprocs 0, a name with ':' ...
    SpawnFailed,       // start(): the launcher failed (error_code() is its errno, or 0)
    ShutDown,          // the supervisor is being destroyed
    Busy,              // start(), restart(), update() while an update of it is in progress
    RolledBack,        // update(): a new instance failed (the message says how); the program
                       // runs its old spec again
    Interrupted,       // update(): a stop(), kill() or remove() of the program ended it halfway
  };
  SupervisorError(Kind kind, const std::string& message, int pid = 0, int error_code = 0);
  ~SupervisorError() override;
  Kind kind() const noexcept { return kind_; }
  int pid() const noexcept { return pid_; }
  int error_code() const noexcept { return error_code_; }

 private:
  Kind kind_;
  int pid_;
  int error_code_;
};
const char* to_string(SupervisorError::Kind kind) noexcept;

// How Supervisor::update() replaces a program's instances (docs/supervisor.md, "Rolling
// updates").
struct UpdateOptions {
  // 0: one instance at a time, each new one started and ready before its old one is stopped,
  // so the program never runs fewer than numprocs ready instances. k > 0: up to k at a time,
  // each old one stopped first (for a program of which two copies cannot run at once).
  unsigned max_unavailable = 0;
  // A new instance not ready this long after its start fails the update (and rolls it back).
  std::chrono::milliseconds ready_timeout{60000};
};

class Supervisor {
 public:
  struct Options {
    // Called for every life-cycle event of every instance, on the supervisor's thread, outside
    // its lock, in order. What it throws is caught and counted (callback_errors()). It may call
    // status(); it must not destroy the Supervisor.
    std::function<void(const SupervisorEvent&)> on_event;
  };

  Supervisor();
  explicit Supervisor(Options options);
  // Stops every instance (stop signal to its process group, stop_grace, SIGKILL), reaps them
  // and removes the notify socket: no child, zombie, fd or socket file is left.
  ~Supervisor();
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;

  // Registers a program, stopped. Throws SupervisorError (BadSpec, DuplicateProgram).
  void add(ProgramSpec spec);
  // Starts every stopped instance of the program; throws SpawnFailed if a launch fails (the
  // instance is then stopped), UnknownProgram.
  void start(const std::string& name);
  // Stops every instance and waits until they have exited (at most stop_grace, then SIGKILL)
  // and their process groups are gone; an update in progress is interrupted. A start() or restart()
  // meanwhile does not keep it waiting: it returns once the processes it stopped are gone.
  void stop(const std::string& name);
  // Stops then starts every instance.
  void restart(const std::string& name);
  // A rolling update of program spec.name to `spec` (numprocs may change): instance by
  // instance, the new one is started, waited for until ready, and swapped in; then the old one
  // is stopped (UpdateOptions). Returns once every old instance it stopped is gone. An
  // instance stopped (by hand, or given up) is swapped for a stopped one. A new instance that
  // fails (exits, is not ready within ready_timeout, cannot be launched) rolls the update back
  // by the same steps and throws RolledBack. Throws BadSpec, UnknownProgram, Busy, Interrupted,
  // ShutDown. From an event callback it returns at once and reports nothing.
  void update(ProgramSpec spec, UpdateOptions options = {});
  // Stops the program's instances (as stop()), waits until they are gone, and forgets it: the
  // name can be added again. An update in progress is interrupted.
  void remove(const std::string& name);
  void start_all();
  void stop_all();
  // A stop without the grace: SIGKILL now to every instance's process group, and to what is
  // left of the groups of runs whose main process already exited. The instances end Stopped
  // (not restarted). Returns once the signals are sent; a stop() in progress returns once they
  // are gone. Safe from any thread, the callback included.
  void kill(const std::string& name);
  void kill_all();

  // One entry per instance of every program, in the order they were added.
  std::vector<ProcessStatus> status() const;
  std::uint64_t callback_errors() const noexcept;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace procpool
