#pragma once
#include "procpool/detail/require_cxx20.hpp"

// procpool::Supervisor: long-running programs kept running, as supervisord or PM2 do, embedded
// in the application (docs/supervisor.md). No tasks, no rings: see procpool::Pool for those.

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
  // and their process groups are gone. A start() or restart() meanwhile does not keep it
  // waiting: it returns once the processes it stopped are gone.
  void stop(const std::string& name);
  // Stops then starts every instance.
  void restart(const std::string& name);
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
