#pragma once

// `procpool supervise`, driven as a user drives it: the built binary with its stdout and stderr
// on pipes, read as they come. A test waits for a line on stderr (a life-cycle event) or stdout
// (what the program printed, passed through), bounded, never after a sleep; it sends signals
// and waits for the exit through a pidfd. A run still alive when the test ends is SIGKILLed and
// reaped, so a hung binary fails its test instead of hanging the suite.
//
// ScriptDir is the private temp dir (0700) the programs under supervision live in: shell scripts
// the tests write, with $NOTIFY naming procpool-test-notify (the sd_notify helper of
// tests/process).

#include <sys/types.h>  // pid_t

#include <chrono>  // timeouts
#include <string>  // outputs
#include <vector>  // argv

#include "../common/test_timing.hpp"

namespace procpool::supervise_test {

using namespace std::chrono_literals;

// Generous: every wait ends as soon as what it waits for arrives.
inline constexpr std::chrono::milliseconds kTimeout =
    test::scaled(std::chrono::milliseconds(20000));

class ScriptDir {
 public:
  ScriptDir();
  ~ScriptDir();
  ScriptDir(const ScriptDir&) = delete;
  ScriptDir& operator=(const ScriptDir&) = delete;

  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  // A /bin/sh script, mode 0700 (0600 if !executable); $NOTIFY is procpool-test-notify.
  std::string script(const std::string& name, const std::string& body,
                     bool executable = true) const;

 private:
  std::string path_;
};

class SuperviseRun {
 public:
  // Starts `procpool supervise ARGS...` (stdin /dev/null).
  explicit SuperviseRun(const std::vector<std::string>& args);
  ~SuperviseRun();
  SuperviseRun(const SuperviseRun&) = delete;
  SuperviseRun& operator=(const SuperviseRun&) = delete;

  // Reads until stderr holds `count` lines containing `text`; false at the timeout (or if it
  // exited first).
  bool wait_for_err(const std::string& text, std::size_t count = 1,
                    std::chrono::milliseconds timeout = kTimeout);
  // The same for stdout (the program's output, passed through).
  bool wait_for_out(const std::string& text, std::size_t count = 1,
                    std::chrono::milliseconds timeout = kTimeout);
  void signal(int signal);
  // Reads both outputs until it has exited and closed them. The exit status, 128 + N if signal
  // N killed it, or -1 at the timeout (it is then SIGKILLed).
  int wait_exit(std::chrono::milliseconds timeout = kTimeout);

  const std::string& err() const { return err_; }
  const std::string& out() const { return out_; }
  // Lines of stderr containing `text`.
  std::size_t err_lines_with(const std::string& text) const;
  pid_t pid() const { return pid_; }

 private:
  // One poll round (at most `wait`): reads what is there, notes the exit.
  void pump(std::chrono::milliseconds wait);
  bool wait_for(const std::string& stream, const std::string& text, std::size_t count,
                std::chrono::milliseconds timeout);

  pid_t pid_ = -1;
  int pidfd_ = -1;
  int out_fd_ = -1, err_fd_ = -1;
  bool exited_ = false;
  int status_ = -1;
  std::string out_, err_;
};

// Lines of `text` containing `needle`.
std::size_t lines_with(const std::string& text, const std::string& needle);

// Waits (bounded, on a pidfd) until process `pid` is gone; true if it is.
bool wait_gone(pid_t pid, std::chrono::milliseconds timeout = kTimeout);

}  // namespace procpool::supervise_test
