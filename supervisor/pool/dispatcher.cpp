#include "pool_core.hpp"

#include <algorithm>  // std::min, std::max
#include <string>     // messages

#include "pool_clock.hpp"
#include "procpool/wire_format.hpp"

namespace procpool::detail {
using State = WorkerSlot::State;

WorkerSlot* PoolCore::pick_slot_locked(Clock::time_point now) {
  WorkerSlot* best = nullptr;
  for (WorkerSlot& slot : slots_) {
    if (slot.state() != State::kReady || slot.partial_task != WorkerSlot::kNoTask) continue;
    const unsigned depth = options_.pipeline_depth != 0 ? options_.pipeline_depth : slot.depth;
    if (slot.inflight.size() >= depth) continue;
    if (options_.pipeline_depth == 0 && !slot.inflight.empty() && running_long_locked(slot, now)) {
      continue;  // its task runs far longer than measured: nothing more waits behind it
    }
    if (best == nullptr || slot.inflight.size() < best->inflight.size()) best = &slot;
  }
  return best;
}

// The task at the head of the worker's pipeline has run for more than four times the worker's
// measured time per task (and at least kLongTask): the adaptive depth, measured on shorter
// tasks, would queue new tasks behind a long one.
bool PoolCore::running_long_locked(const WorkerSlot& slot, Clock::time_point now) const noexcept {
  const Clock::time_point began = tasks_[slot.inflight.front()].began;
  if (began == Clock::time_point{}) return false;
  const auto ran = std::chrono::duration_cast<std::chrono::nanoseconds>(now - began).count();
  const auto floor = std::chrono::duration_cast<std::chrono::nanoseconds>(kLongTask).count();
  return ran > std::max<std::int64_t>(floor, 4 * slot.service_ns);
}

void PoolCore::start_dispatch_locked(WorkerSlot& slot, std::uint32_t index, Clock::time_point now) {
  TaskRecord& task = tasks_[index];
  queue_wait_.record(micros_between(task.submitted, now));
  task.dispatched = now;
  task.slot = static_cast<int>(slot.index);
  ++task.attempts;
  if (task.attempts > 1) ++retried_;
  if (slot.inflight.empty()) {
    task.began = now;
    if (task.timeout.count() != 0) slot.next_scan = std::min(slot.next_scan, now + task.timeout);
  }
  ++running_;
  slot.inflight.push_back(index);
  slot.last_active = now;
  ++slot.dispatched;
  slot.partial_task = index;
  slot.partial_offset = 0;
  if (slot.recycle_after != 0 && slot.dispatched >= slot.recycle_after) {
    slot.set_state(State::kDraining);  // recycled once its in-flight tasks are answered
    kick();
  }
}

void PoolCore::dispatch_locked() {
  if (queue_.empty()) return;
  const auto now = Clock::now();
  while (!queue_.empty()) {
    WorkerSlot* slot = pick_slot_locked(now);
    if (slot == nullptr) break;
    const std::uint32_t index = *queue_.pop();
    start_dispatch_locked(*slot, index, now);
    write_task_locked(*slot);
  }
  if (options_.max_queue != 0) changed_.notify_all();  // room in the queue
}

bool PoolCore::write_task_locked(WorkerSlot& slot, const std::string_view* source) {
  if (slot.partial_task == WorkerSlot::kNoTask) return true;
  TaskRecord& task = tasks_[slot.partial_task];
  RingWriter& writer = *slot.writer;
  const std::size_t chunk = writer.max_payload() - sizeof(FrameHeader);
  FrameHeader header;
  header.type = FrameType::kTask;
  header.handler_id = task.handler;
  header.task_id = task.id;
  header.attempt = task.attempts;
  const std::uint16_t chunk_flag = task.chunk_items != 0 ? kFrameChunk : 0;
  const std::string_view payload = source != nullptr ? *source : std::string_view(task.payload);
  do {
    const std::size_t size = std::min(chunk, payload.size() - slot.partial_offset);
    const bool last = slot.partial_offset + size == payload.size();
    header.flags = static_cast<std::uint16_t>(chunk_flag | (last ? 0 : kFrameMore));
    const WriteStatus status =
        write_frame(writer, header, as_bytes(payload.substr(slot.partial_offset, size)));
    if (status == WriteStatus::kFull) return false;  // continued when the worker makes room
    if (status != WriteStatus::kOk) {
      kill_locked(slot,
                  std::string("protocol violation: ") + std::string(to_string(writer.fault())),
                  ProtocolViolation::RingCorruption);
      return false;
    }
    slot.partial_offset += size;
  } while (slot.partial_offset < payload.size());
  slot.partial_task = WorkerSlot::kNoTask;
  return true;
}

void PoolCore::publish_all_locked() {
  for (WorkerSlot& slot : slots_) {
    if (slot.writer && slot.live()) slot.writer->publish();
  }
}

void PoolCore::send_frame_locked(WorkerSlot& slot, FrameType type, std::uint64_t task_id) {
  if (!slot.writer || !slot.live()) return;
  FrameHeader header;
  header.type = type;
  header.task_id = task_id;
  // Control frames are tiny; if the ring is full of task fragments the worker is busy with
  // them, and the control block / kill paths cover what the frame would have said.
  if (slot.partial_task == WorkerSlot::kNoTask) write_frame(*slot.writer, header, {});
  slot.writer->publish();
}

}  // namespace procpool::detail
