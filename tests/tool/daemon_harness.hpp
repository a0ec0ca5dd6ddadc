#pragma once

// A real `procpool run` daemon for the daemon tests: started on a private socket in its own
// temporary directory with a config the test writes, asked through the real `procpool status`
// and `procpool shutdown`, and always stopped (SIGKILL and reaped if it is still running when
// the test ends). Every wait is bounded.

#include <sys/types.h>  // pid_t

#include <chrono>    // bounds
#include <optional>  // exit statuses
#include <string>

#include <boost/json.hpp>

#include "map_run_harness.hpp"  // run_procpool, Result

namespace procpool::map_test {

class Daemon {
 public:
  // A directory of its own (0700) under the test's temporary directory, holding config.toml,
  // and the control socket unless `socket` names another.
  explicit Daemon(const std::string& config, const std::string& socket = "");
  ~Daemon();
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  // Starts `procpool run [OPTIONS]` (stderr to a file), with `env` ("NAME=VALUE") replacing or
  // adding to the inherited environment. Does not wait.
  void start(const std::vector<std::string>& env = {},
             const std::vector<std::string>& options = {});
  // Waits until `procpool status` answers (bounded); false if it never did.
  bool wait_serving();
  // `procpool status --json [NAME]`, parsed; a failed run is a null value.
  boost::json::value status(const std::string& name = "");
  // The first instance whose name is `instance` ("web:0"), from status(); null if none.
  boost::json::object instance(const std::string& instance);
  // Polls status() until `instance`'s state is `state` (bounded).
  bool wait_state(const std::string& instance, const std::string& state);
  Result cli(std::vector<std::string> args);  // `procpool ARGS --socket SOCKET`
  // Waits for the daemon's exit (bounded): its exit status, or nothing if it did not exit.
  std::optional<int> wait_exit(std::chrono::milliseconds bound = std::chrono::seconds(30));
  void signal(int sig);
  std::string stderr_text() const;

  const std::string& dir() const noexcept { return dir_; }
  const std::string& socket() const noexcept { return socket_; }
  const std::string& config_path() const noexcept { return config_path_; }
  pid_t pid() const noexcept { return pid_; }

 private:
  std::string dir_, socket_, config_path_, stderr_path_;
  pid_t pid_ = -1;
  bool reaped_ = true;
};

// Polls kill(pid, 0) until the process is gone (bounded); true if it went.
bool wait_gone(pid_t pid, std::chrono::milliseconds bound = std::chrono::seconds(10));

// A file that exists or not: the tests' gate for programs that wait on it.
void touch(const std::string& path);

// Config sections for the tests. gated_program: a [[program]] that becomes ready (sd_notify
// READY=1) only once the test creates `gate`, then waits for its stop signal; `extra` is added
// to its section. sleeper: one that sleeps (ready once started).
std::string gated_program(const std::string& name, const std::string& gate,
                          const std::string& extra = "");
std::string sleeper(const std::string& name, const std::string& extra = "");

}  // namespace procpool::map_test
