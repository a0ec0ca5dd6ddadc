#pragma once

// The load half of a pool worker (WorkerSlot): the tasks on board, how fast it answers (the
// adaptive pipeline depth's input), and its counters. Guarded by PoolCore's mutex.

#include <array>    // tasks on board per priority
#include <chrono>   // time points
#include <cstdint>  // counters
#include <deque>    // in-flight tasks
#include <memory>   // the progress mailbox that holds the ring

#include "adaptive_depth.hpp"
#include "progress_stream.hpp"

namespace procpool::detail {

struct WorkerLoad {
  using Clock = std::chrono::steady_clock;

  // Tasks dispatched to this worker and not yet answered, in dispatch order.
  // The SDK serves them highest priority first (kFrameHigh/kFrameLow), oldest first within
  // one; WorkerControl::current_task_id says which one runs.
  std::deque<std::uint32_t> inflight;
  std::array<std::uint32_t, 3> on_board{};  // inflight's tasks per Priority
  // When the task the worker serves now started, as far as we know (set when it reached the
  // head: an answer came for the one before it, or it was dispatched to an empty pipeline).
  Clock::time_point head_began{};

  // Adaptive pipeline (PoolOptions::pipeline_depth 0): the worker's time per task (EWMA of the
  // time between answers while it is busy), and the depth it gives.
  std::int64_t service_ns = 0;  // 0 = not measured yet
  Clock::time_point last_answer{};
  // One until measured: a fresh worker's first task may be long, and short tasks must not
  // queue behind it.
  unsigned depth = AdaptiveDepth::kUnmeasured;
  // When the tasks on board next need looking at (a timeout or a cancel grace falls due).
  Clock::time_point next_scan = Clock::time_point::max();

  Clock::time_point last_active{};
  // When the tasks on board last went from none to some: a heartbeat is owed only from then
  // (an idle worker sleeps, its heartbeat with it).
  Clock::time_point busy_since{};
  std::uint64_t dispatched = 0;     // tasks sent to this incarnation
  std::uint64_t recycle_after = 0;  // 0 = never
  std::uint64_t tasks_done = 0;
  std::uint64_t tasks_failed = 0;
  std::uint64_t last_answered_id = 0;  // the task of its latest answer (charged_task_locked)
  // A task's progress mailbox that went over its bound (ProgressStream::backlogged): the ring
  // from this worker is not read until it is run down, so a slow progress callback holds the
  // worker back (its emit blocks on the full ring) instead of filling memory.
  std::shared_ptr<ProgressStream> held_by;
  // The same over every incarnation of the slot.
  std::uint64_t slot_tasks_done = 0;
  std::uint64_t slot_tasks_failed = 0;

  // A new incarnation: nothing measured, nothing done (the slot's totals stay).
  void new_run(Clock::time_point now, std::uint64_t recycle_at) noexcept {
    service_ns = 0;
    depth = AdaptiveDepth::kUnmeasured;
    next_scan = Clock::time_point::max();
    last_active = now;
    dispatched = tasks_done = tasks_failed = 0;
    last_answered_id = 0;
    held_by.reset();
    recycle_after = recycle_at;
  }
};

}  // namespace procpool::detail
