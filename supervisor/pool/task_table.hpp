#pragma once

#include <chrono>       // time points
#include <cstdint>      // ids
#include <string>       // payloads
#include <string_view>  // payloads stored
#include <vector>       // the slab

#include "procpool/pool.hpp"  // Completion, Priority
#include "progress_stream.hpp"
#include "worker_slot.hpp"  // Clock

namespace procpool::detail {

// One task the pool holds, from submission until its outcome is handed to delivery.
struct TaskRecord {
  std::uint64_t id = 0;  // 0 while the record is free
  std::uint32_t generation = 0;
  std::uint32_t handler = 0;
  Priority priority = Priority::Normal;
  std::uint32_t attempts = 0;  // dispatches so far
  std::uint32_t max_attempts = 1;
  std::chrono::milliseconds timeout{0};
  std::uint32_t chunk_items = 0;  // a chunk of this many items (chunk_format.hpp); 0 = one task
  std::string payload;            // keeps its capacity across reuse: no allocation once warm
  bool payload_stored = true;     // false: sent straight from the caller's buffer, not kept
  Clock::time_point submitted{};
  Clock::time_point dispatched{};
  // When it reached the head of its worker's pipeline, i.e. started running as far as we know
  // (the epoch while not): timeouts count from here, not from dispatch.
  Clock::time_point began{};
  // Workers that died with it on board but not running: after kMaxUnchargedDeaths it is
  // charged anyway (PoolCore::charged_task_locked).
  std::uint32_t uncharged_deaths = 0;
  int slot = -1;           // worker slot while in flight
  bool abandoned = false;  // already resolved (cancelled, timed out) but still on a worker
  Clock::time_point abandon_deadline{};
  // A plain task the dispatcher may pack into one frame with others queued behind it
  // (coalescing.cpp): no timeout, no cancel source, a small payload, and not taken out of a
  // coalesced frame before (those go alone).
  bool coalescable = false;
  Completion completion;
  // TaskOptions::on_progress's mailbox, until the outcome is pushed into it (none: no listener).
  std::shared_ptr<ProgressStream> progress;
  // A carrier: the frame of coalesced tasks, sent as a chunk (chunk_items == members.size()).
  // Holds each member's completion, in chunk order; empty for every other record.
  std::vector<Completion> members;
};

// The tasks a record stands for: a carrier's members, else 1 (a user's chunk is one task).
inline std::size_t tasks_in(const TaskRecord& task) noexcept {
  return task.members.empty() ? 1 : task.members.size();
}

// The slab of task records. A record's index is stable while the task lives, and its id names
// the record and its reuse (generation << 32 | index): a stale id, an answer for an earlier
// occupant of the record, never matches. Freed records are reused last-in first-out, so a
// steady load touches the same few records and allocates nothing once warm. Not thread-safe:
// PoolCore calls it with its mutex held.
class TaskTable {
 public:
  // Payload buffers above this leave their record when it is freed, so records do not pin a
  // burst's memory; the largest one is kept aside (one, whatever the load) for the next large
  // payload, which then costs one copy into memory already mapped rather than a fresh mapping
  // faulted in page by page.
  static constexpr std::size_t kKeptPayloadCapacity = 64 * 1024;

  explicit TaskTable(std::size_t reserve = 0) { tasks_.reserve(reserve); }

  // A free record with a fresh id; every other field is as its last occupant left it (the
  // caller sets what the new task needs).
  std::uint32_t allocate();
  // Marks the record free: its id no longer matches anything.
  void free(std::uint32_t index);
  // Copies `payload` into the record's buffer, taking the buffer kept aside if the record's
  // own is too small for it.
  void store_payload(std::uint32_t index, std::string_view payload);
  // The record index `id` names, if that task is still held.
  bool holds(std::uint64_t id) const noexcept {
    const std::uint32_t index = index_of(id);
    return index < tasks_.size() && tasks_[index].id == id;
  }
  static constexpr std::uint32_t index_of(std::uint64_t id) noexcept {
    return static_cast<std::uint32_t>(id & 0xFFFFFFFFu);
  }

  TaskRecord& operator[](std::uint32_t index) noexcept { return tasks_[index]; }
  const TaskRecord& operator[](std::uint32_t index) const noexcept { return tasks_[index]; }
  std::size_t size() const noexcept { return tasks_.size(); }  // records ever allocated

 private:
  std::vector<TaskRecord> tasks_;
  std::vector<std::uint32_t> free_;
  std::string large_spare_;  // the largest payload buffer freed so far (kKeptPayloadCapacity)
};

}  // namespace procpool::detail
