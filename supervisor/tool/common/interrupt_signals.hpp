#pragma once

#include <pthread.h>  // pthread_sigmask
#include <signal.h>   // sigset_t

// SIGINT and SIGTERM for the procpool tool: the handler only counts the signal, remembers the
// first one, and writes a byte to a self-pipe; the main thread polls the pipe with its other
// fds and acts on the count (see map/map_command.cpp: the first signal stops the run gracefully,
// the second stops it at once).
//
// The handler never runs on the pool's threads: start every thread through
// start_thread_without_signals(), which blocks both signals in the new thread (and so in every
// thread it starts, such as the pool's supervisor thread). Only the main thread takes them.
//
// Two cases cannot wait for the main thread, so the handler ends the process itself with
// _exit(128 + first signal): a third signal, and a second one while the main thread has been
// blocked writing output for 100 ms or more (see BlockingWrite). The workers then die with the
// process (PR_SET_PDEATHSIG).

#include <functional>  // std::function
#include <string>      // signal names
#include <thread>      // std::thread

namespace procpool::tool {

class InterruptSignals {
 public:
  // Installs the handlers (SA_RESTART) for SIGINT and SIGTERM; one instance at a time. Throws
  // procpool::Error if the self-pipe or a handler cannot be set up.
  InterruptSignals();
  // Restores the previous handlers and closes the pipe.
  ~InterruptSignals();
  InterruptSignals(const InterruptSignals&) = delete;
  InterruptSignals& operator=(const InterruptSignals&) = delete;

  // Readable after a signal; drain() empties it.
  int fd() const noexcept;
  void drain() const noexcept;
  // Signals received so far.
  int count() const noexcept;
  // The first signal received (SIGINT or SIGTERM), or 0.
  int first() const noexcept;
  // 128 + first(): the shell's status for a command ended by that signal.
  int exit_status() const noexcept;

  // While one is alive, the calling (main) thread may block in write(2): once it has been alive
  // for 100 ms, a second signal exits at once instead of waiting for a reader that may never
  // come. (Not nested: one at a time.)
  class BlockingWrite {
   public:
    BlockingWrite() noexcept;
    ~BlockingWrite();
    BlockingWrite(const BlockingWrite&) = delete;
    BlockingWrite& operator=(const BlockingWrite&) = delete;
  };
};

// SIGINT and SIGTERM blocked on the calling thread while it lives, so that the threads started
// meanwhile (the Supervisor's) inherit the mask and never run the handler.
class InterruptSignalsBlocked {
 public:
  InterruptSignalsBlocked() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    ::pthread_sigmask(SIG_BLOCK, &set, &previous_);
  }
  ~InterruptSignalsBlocked() { ::pthread_sigmask(SIG_SETMASK, &previous_, nullptr); }
  InterruptSignalsBlocked(const InterruptSignalsBlocked&) = delete;
  InterruptSignalsBlocked& operator=(const InterruptSignalsBlocked&) = delete;

 private:
  sigset_t previous_;
};

// "SIGINT", "SIGTERM", "SIGHUP" ... (sigabbrev_np), or "signal N" for a number it has no name for.
std::string signal_name(int signal);

// Starts `body` on a new thread with SIGINT and SIGTERM blocked in it.
std::thread start_thread_without_signals(std::function<void()> body);

}  // namespace procpool::tool
