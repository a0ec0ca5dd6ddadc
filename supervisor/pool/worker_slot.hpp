#pragma once

// One place for a worker in the pool: a managed process (WorkerProcess: the child, its output,
// its state machine and restart history), its channel (the segment, rings and doorbell, while a
// process runs), and its load (the tasks on board). Owned by PoolCore; every field is guarded by
// PoolCore's mutex, and only the supervisor thread spawns, kills and reaps (WorkerProcess::out
// and err are that thread's alone).

#include <optional>  // the channel exists only while a worker runs

#include "worker_channel.hpp"
#include "worker_load.hpp"
#include "worker_process.hpp"

namespace procpool::detail {

struct WorkerSlot {
  using State = WorkerProcess::State;
  static constexpr std::uint32_t kNoTask = WorkerChannel::kNoTask;

  unsigned index = 0;
  WorkerProcess process;
  std::optional<WorkerChannel> channel;
  WorkerLoad load;

  // The task whose payload is only partly written (its fragments wait for ring room), or kNoTask.
  std::uint32_t writing_task() const noexcept {
    return channel ? channel->writing_task() : kNoTask;
  }
  // The questions every part of the pool asks.
  State state() const noexcept { return process.state(); }
  bool live() const noexcept { return process.live(); }
  int pid() const noexcept { return process.pid(); }
};

}  // namespace procpool::detail
