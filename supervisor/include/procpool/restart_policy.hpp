#pragma once
#include "procpool/detail/require_cxx20.hpp"

// The restart policy shared by the pool's worker slots (PoolOptions::restart) and the
// supervisor's programs (ProgramSpec::restart): full-jitter backoff after broken starts,
// crash-loop reporting, reset after a stable run.

#include <chrono>  // std::chrono::milliseconds

namespace procpool {

// How a slot's worker is restarted after it dies (docs/pool.md compares these defaults with
// Kubernetes, PM2, systemd and Erlang/OTP). A slot never stops retrying unless give_up_after
// says so: a crash loop or a failing spawn backs the slot off, like Kubernetes'
// CrashLoopBackOff, and never stops the healthy workers. Queued tasks wait meanwhile; they fail
// only by their own attempts or timeouts.
//
// Only deaths that show the program is broken count: a failed spawn, an exit before READY, or
// an exit while idle within min_uptime of READY before answering any task. A death with a task on
// board is charged to that task (TaskOptions::max_attempts), and the worker is restarted at once.
//
// A Supervisor program (ProgramSpec::restart) counts as broken when it exits before it is
// ready or within min_uptime of becoming ready; give_up_after then leaves the instance stopped
// (docs/supervisor.md).
struct RestartPolicy {
  // A worker READY for at least this long has proven the program: the count of broken starts
  // in a row is reset.
  std::chrono::milliseconds min_uptime{1000};
  // The n-th broken start in a row waits a uniformly random time below
  // min(max_backoff, initial_backoff * 2^(n-1)) ("full jitter").
  std::chrono::milliseconds initial_backoff{100};
  std::chrono::milliseconds max_backoff{10000};
  // This many broken starts in a row and the slot is reported as crash-looping (its state
  // "crash_loop", PoolEvent::Kind::CrashLoop). It keeps retrying. During Pool construction it
  // makes the constructor throw: a program that cannot come up once is not retried for the
  // caller. 0 = never reported.
  unsigned crash_loop_after = 5;
  // Opt-in: this many broken starts in a row of one slot fail the pool (queued tasks fail
  // PoolFailed, new ones ShuttingDown). 0 = never give up (the default).
  unsigned give_up_after = 0;
};

}  // namespace procpool
