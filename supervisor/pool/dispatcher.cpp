#include "pool_core.hpp"

#include <algorithm>  // std::min, std::max
#include <string>     // messages

#include "coalescing.hpp"
#include "pool_clock.hpp"
#include "procpool/wire_format.hpp"

namespace procpool::detail {
using State = WorkerSlot::State;

WorkerSlot* PoolCore::pick_slot_locked(Clock::time_point now, bool coalescing) {
  WorkerSlot* best = nullptr;
  for (WorkerSlot& slot : slots_) {
    if (slot.state() != State::kReady || slot.writing_task() != WorkerSlot::kNoTask) continue;
    unsigned depth = options_.pipeline_depth != 0 ? options_.pipeline_depth : slot.load.depth;
    // Coalescable tasks keep at most kCoalescedFrames frames on board: the rest wait in the
    // queue, to go in the next frame together once the worker answers (coalescing.cpp).
    if (coalescing) depth = std::min(depth, kCoalescedFrames);
    if (slot.load.inflight.size() >= depth) continue;
    if (options_.pipeline_depth == 0 && !slot.load.inflight.empty() &&
        running_long_locked(slot, now)) {
      continue;  // its task runs far longer than measured: nothing more waits behind it
    }
    if (best == nullptr || slot.load.inflight.size() < best->load.inflight.size()) best = &slot;
  }
  return best;
}

// The task at the head of the worker's pipeline has run for more than four times the worker's
// measured time per task (and at least kLongTask): the adaptive depth, measured on shorter
// tasks, would queue new tasks behind a long one.
bool PoolCore::running_long_locked(const WorkerSlot& slot, Clock::time_point now) const noexcept {
  const Clock::time_point began = slot.load.head_began;
  if (began == Clock::time_point{}) return false;
  const auto ran = std::chrono::duration_cast<std::chrono::nanoseconds>(now - began).count();
  const auto floor = std::chrono::duration_cast<std::chrono::nanoseconds>(kLongTask).count();
  // A coalesced frame is many tasks: the measured time is per task.
  const auto tasks = static_cast<std::int64_t>(tasks_in(tasks_[slot.load.inflight.front()]));
  return ran > std::max<std::int64_t>(floor, 4 * tasks * slot.load.service_ns);
}

void PoolCore::start_dispatch_locked(WorkerSlot& slot, std::uint32_t index, Clock::time_point now) {
  TaskRecord& task = tasks_[index];
  const std::size_t tasks = tasks_in(task);
  if (task.members.empty()) queue_wait_.record(micros_between(task.submitted, now));
  task.dispatched = now;
  task.slot = static_cast<int>(slot.index);
  ++task.attempts;
  if (task.attempts > 1) ++retried_;
  last_dispatch_ = now;
  if (slot.load.inflight.empty()) {
    task.began = now;
    slot.load.head_began = now;
    slot.load.busy_since = now;
    // The heartbeat is owed from now on: a supervisor thread asleep past its hang bound (the
    // pool was idle) must look in time (timers_locked).
    wake_for_locked(now + options_.heartbeat_interval * options_.heartbeat_misses);
    if (task.timeout.count() != 0) {
      slot.load.next_scan = std::min(slot.load.next_scan, now + task.timeout);
      wake_for_locked(slot.load.next_scan);
    }
  }
  running_ += tasks;
  slot.load.inflight.push_back(index);
  ++slot.load.on_board[static_cast<std::size_t>(task.priority)];
  slot.load.last_active = now;
  slot.load.dispatched += tasks;
  FrameHeader header;
  header.type = FrameType::kTask;
  header.handler_id = task.handler;
  header.task_id = task.id;
  header.attempt = task.attempts;
  // A task dispatched while higher levels still wait took its turn from them (TaskQueue's
  // bypass bound): it goes out at the highest waiting level, so the worker does not let those
  // tasks overtake it again in its ring.
  const std::optional<Priority> waiting = queue_.top();
  const Priority sent = waiting && *waiting < task.priority ? *waiting : task.priority;
  header.flags = static_cast<std::uint16_t>((task.chunk_items != 0 ? kFrameChunk : 0) |
                                            (task.progress ? kFrameProgress : 0) |
                                            frame_priority_flags(static_cast<unsigned>(sent)));
  slot.channel->begin_task(index, header);
  if (slot.load.recycle_after != 0 && slot.load.dispatched >= slot.load.recycle_after) {
    recycle_locked(slot, Recycle::kQuotaReached);  // drained and replaced (recycling.cpp)
  }
}

void PoolCore::dispatch_locked(Clock::time_point now) {
  if (queue_.empty()) return;
  while (!queue_.empty()) {
    // Coalescing is the adaptive pipeline's: a fixed pipeline_depth sends tasks one per frame.
    // While priorities are mixed, tasks go one per frame as well, so that the queue's bypass
    // bound counts tasks and a High one can overtake every task not yet started.
    const bool coalescing =
        options_.pipeline_depth == 0 && queue_.one_level() && tasks_[*queue_.peek()].coalescable;
    WorkerSlot* slot = pick_slot_locked(now, coalescing);
    if (slot == nullptr) break;
    std::uint32_t index = *queue_.pop();
    if (coalescing) index = coalesce_locked(*slot, index, now);
    start_dispatch_locked(*slot, index, now);
    write_task_locked(*slot);
  }
  if (options_.max_queue != 0) changed_.notify_all();  // room in the queue
}

bool PoolCore::write_task_locked(WorkerSlot& slot, const std::string_view* source) {
  WorkerChannel& channel = *slot.channel;
  const std::uint32_t index = channel.writing_task();
  if (index == WorkerSlot::kNoTask) return true;
  const std::string_view payload =
      source != nullptr ? *source : std::string_view(tasks_[index].payload);
  switch (channel.write_task(as_bytes(payload))) {
    case WorkerChannel::WriteOutcome::kDone:
      return true;
    case WorkerChannel::WriteOutcome::kFull:
      // Continued when the worker makes room, by the supervisor thread, which must then be
      // waiting for that room: it announces the wait only for tasks it saw partly written when
      // it went to sleep, so a submitter or a waiting thread that left one here wakes it to
      // look again. (Without this, the worker's release rang no doorbell and the rest of the
      // task waited for the next timer.)
      if (!on_supervisor_thread()) kick();
      return false;
    case WorkerChannel::WriteOutcome::kFault:
      break;
  }
  kill_locked(slot, "protocol violation: " + std::string(channel.fault().detail),
              channel.fault().violation);
  return false;
}

// As the SDK chooses (worker/src/serve_loop.cpp, next_task): the oldest of the highest
// priority on board. Scans only when priorities are mixed. (The SDK also lets a task overtaken
// 8 times go first; what that changes here is only when a timeout starts counting.)
std::size_t PoolCore::next_served_locked(const WorkerSlot& slot) const noexcept {
  const auto& inflight = slot.load.inflight;
  const auto front = static_cast<std::size_t>(tasks_[inflight.front()].priority);
  if (slot.load.on_board[front] == inflight.size()) return 0;
  std::size_t best = 0;
  for (std::size_t i = 1; i < inflight.size() && tasks_[inflight[best]].priority != Priority::High;
       ++i) {
    if (tasks_[inflight[i]].priority < tasks_[inflight[best]].priority) best = i;
  }
  return best;
}

void PoolCore::publish_all_locked() {
  for (WorkerSlot& slot : slots_) {
    if (slot.channel && slot.live()) slot.channel->publish();
  }
}

void PoolCore::send_frame_locked(WorkerSlot& slot, FrameType type, std::uint64_t task_id) {
  if (!slot.channel || !slot.live()) return;
  // Control frames are tiny; if the ring is full of task fragments the worker is busy with
  // them, and the control block / kill paths cover what the frame would have said.
  slot.channel->send_control(type, task_id);
  slot.channel->publish();
}

}  // namespace procpool::detail
