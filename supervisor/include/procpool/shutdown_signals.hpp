#pragma once
#include "procpool/detail/require_cxx20.hpp"

// procpool::ShutdownSignals — SIGTERM and SIGINT stop an embedded pool: the first signal calls
// pool.shutdown() (queued and running tasks finish within shutdown_grace), a second one
// pool.terminate() (workers killed at once; the shutdown() in progress then returns too).
//
//   procpool::Pool pool(options);
//   procpool::ShutdownSignals signals(pool);   // declared after the pool: destroyed before it
//   ... serve ...
//   signals.wait();                            // until a signal stopped the pool
//   return 128 + signals.first_signal();
//
// How: the signal handler only writes the signal number to a pipe (async-signal-safe); a watcher
// thread reads it and calls the actions, the graceful one on a helper thread of its own so that
// a second signal is seen while it runs. Both threads are started with every signal blocked, so
// the handler always runs on one of the application's threads (with SA_RESTART), never on
// ours: at least one application thread must leave SIGTERM and SIGINT unblocked (normally
// main). The previous handlers come back on destruction. One instance at a time (a second one
// throws procpool::Error). For several pools, or anything else, pass your own actions.

#include <chrono>      // std::chrono::milliseconds
#include <functional>  // std::function
#include <memory>      // std::unique_ptr

namespace procpool {

class Pool;

class ShutdownSignals {
 public:
  // First signal: pool.shutdown(); second: pool.terminate(). The pool must outlive this.
  explicit ShutdownSignals(Pool& pool);
  // First signal: `graceful()` on a helper thread; second: `immediate()` on the watcher thread
  // (while `graceful` may still run); later ones are counted only. What either throws is
  // reported on stderr. Throws procpool::Error if another instance exists, or if the handlers
  // cannot be installed.
  ShutdownSignals(std::function<void()> graceful, std::function<void()> immediate);
  // Restores the previous handlers, then waits for an action still running (a graceful
  // shutdown takes up to the pool's shutdown_grace plus stop_grace; a second signal meanwhile
  // still cuts it short) and stops the watcher thread.
  ~ShutdownSignals();
  ShutdownSignals(const ShutdownSignals&) = delete;
  ShutdownSignals& operator=(const ShutdownSignals&) = delete;

  // Blocks until a signal's action returned (shutdown() or terminate() done).
  void wait();
  // The same with a bound; false if it passed first.
  bool wait_for(std::chrono::milliseconds timeout);
  // Signals received so far.
  unsigned received() const;
  // The first signal received (SIGTERM or SIGINT), 0 if none yet.
  int first_signal() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace procpool
