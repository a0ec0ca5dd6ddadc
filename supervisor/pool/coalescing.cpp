// Coalescing (coalescing.hpp): packing queued plain tasks into one frame, and taking such a
// frame apart again when its members must go alone.
//
// A carrier record stands for the frame on board: one dispatch, one entry in the worker's
// pipeline, one attempt of its own. Its members' records are freed when they are packed (their
// completions move into the carrier), so a carrier is resolved as a whole: one chunk answer,
// checked before any member sees it, then fanned out in chunk order (delivery.cpp). Nothing is
// delivered for a member before the whole frame was answered, so a member is never resolved
// twice.
//
// When the worker dies with a carrier on board, which member it died in is unknown: every
// member goes back to the front of the queue in a record of its own, in order, uncharged, and
// from then on alone. The one that kills workers then does it alone, and is charged as any task
// is (worker_exit.cpp); the others run once more and are answered once.

#include "coalescing.hpp"

#include <algorithm>  // std::min
#include <vector>     // the members taken apart

#include "pool_clock.hpp"
#include "pool_core.hpp"
#include "procpool/chunk_format.hpp"

namespace procpool::detail {

std::uint32_t PoolCore::coalesce_locked(const WorkerSlot& slot, std::uint32_t head,
                                        Clock::time_point now) {
  // About kPipelineWork of this worker's measured work (AdaptiveDepth): a frame of tasks that
  // take long would leave the other workers idle while one serves it.
  const std::size_t most = slot.load.depth;
  const std::size_t budget = std::min(kCoalescedBytes, options_.max_payload);
  auto joins = [&](const TaskRecord& first, const TaskRecord& task, std::size_t bytes) {
    return task.coalescable && task.handler == first.handler &&
           task.max_attempts == first.max_attempts &&
           bytes + kChunkItemHeader + task.payload.size() <= budget;
  };
  {
    const TaskRecord& first = tasks_[head];
    const std::optional<std::uint32_t> next = queue_.front(first.priority);
    if (most < 2 || !next ||
        !joins(first, tasks_[*next], kChunkCountSize + kChunkItemHeader + first.payload.size())) {
      return head;  // alone: nothing to pack it with
    }
  }
  const std::uint32_t carrier_index = tasks_.allocate();  // may move the records: refs after
  TaskRecord& carrier = tasks_[carrier_index];
  const TaskRecord& first = tasks_[head];
  carrier.handler = first.handler;
  carrier.priority = first.priority;
  carrier.attempts = 0;
  carrier.max_attempts = first.max_attempts;
  carrier.timeout = std::chrono::milliseconds(0);
  carrier.submitted = first.submitted;
  carrier.slot = -1;
  carrier.abandoned = false;
  carrier.began = Clock::time_point{};
  carrier.uncharged_deaths = 0;
  carrier.coalescable = false;
  carrier.payload_stored = true;
  carrier.completion = Completion();
  carrier.members.clear();
  ChunkWriter writer(carrier.payload);
  writer.begin();
  // Members' queue waits end here (start_dispatch_locked records none for a carrier).
  auto take = [&](std::uint32_t index) {
    TaskRecord& task = tasks_[index];
    queue_wait_.record(micros_between(task.submitted, now));
    writer.add(task.payload);
    carrier.members.push_back(std::move(task.completion));
    tasks_.free(index);
  };
  take(head);
  while (carrier.members.size() < most) {
    const std::optional<std::uint32_t> next = queue_.front(carrier.priority);
    if (!next || !joins(carrier, tasks_[*next], writer.size())) break;
    queue_.pop_front(carrier.priority);
    take(*next);
  }
  carrier.chunk_items = static_cast<std::uint32_t>(carrier.members.size());
  coalesced_ += carrier.members.size();
  return carrier_index;
}

void PoolCore::requeue_members_locked(std::uint32_t carrier_index, bool died) {
  const std::size_t count = tasks_[carrier_index].members.size();
  std::vector<std::uint32_t> solo(count);
  for (std::uint32_t& index : solo) index = tasks_.allocate();  // before taking any reference
  TaskRecord& carrier = tasks_[carrier_index];
  const Priority priority = carrier.priority;
  ChunkReader reader(carrier.payload);  // our own encoding, so every item is there
  std::string_view item;
  for (std::size_t k = 0; k < count && reader.next(item); ++k) {
    TaskRecord& task = tasks_[solo[k]];
    task.handler = carrier.handler;
    task.priority = priority;
    task.attempts = 0;
    task.max_attempts = carrier.max_attempts;
    task.timeout = std::chrono::milliseconds(0);
    task.chunk_items = 0;
    task.payload.assign(item);
    task.payload_stored = true;
    task.submitted = carrier.submitted;
    task.slot = -1;
    task.abandoned = false;
    task.began = Clock::time_point{};
    task.uncharged_deaths = carrier.uncharged_deaths + (died ? 1 : 0);
    task.coalescable = false;  // alone from now on
    task.completion = std::move(carrier.members[k]);
    task.members.clear();
  }
  if (died) retried_ += count;
  carrier.members.clear();
  carrier.chunk_items = 0;
  tasks_.free(carrier_index);
  for (auto it = solo.rbegin(); it != solo.rend(); ++it) queue_.push_front(priority, *it);
}

}  // namespace procpool::detail
