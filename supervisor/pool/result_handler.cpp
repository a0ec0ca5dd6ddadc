#include "pool_core.hpp"

#include <algorithm>  // std::find, std::max
#include <string>     // results
#include <utility>    // std::move

#include "adaptive_depth.hpp"
#include "chunk_answers.hpp"
#include "pool_clock.hpp"
#include "procpool/chunk_format.hpp"
#include "procpool/wire_format.hpp"
#include "report_text.hpp"
#include "worker_error_kind.hpp"

namespace procpool::detail {
using State = WorkerSlot::State;

void PoolCore::drain_all_locked() {
  for (WorkerSlot& slot : slots_) {
    if (slot.channel && slot.live()) drain_slot_locked(slot);
  }
}

bool PoolCore::ring_held(const WorkerSlot& slot) {
  const std::shared_ptr<ProgressStream>& stream = slot.load.held_by;
  return stream && !stream->callback_waiting() && stream->backlogged() && !stream->running_here();
}

void PoolCore::drain_slot_locked(WorkerSlot& slot, bool may_hold) {
  if (may_hold && slot.load.held_by) {  // a progress backlog holds the ring (WorkerLoad)
    if (ring_held(slot)) return;
    if (!slot.load.held_by->backlogged()) slot.load.held_by.reset();
  }
  const std::uint64_t incarnation = slot.process.incarnation;
  WorkerChannel::Frame frame;
  WorkerChannel::ReadOutcome outcome;
  while ((outcome = slot.channel->read(frame)) == WorkerChannel::ReadOutcome::kFrame) {
    on_frame_locked(slot, frame);
    if (slot.process.incarnation != incarnation || !slot.channel) return;  // killed meanwhile
    if (slot.process.killed || (may_hold && ring_held(slot))) break;
  }
  WorkerChannel& channel = *slot.channel;
  channel.release();
  if (outcome == WorkerChannel::ReadOutcome::kFault) {
    kill_locked(slot, "protocol violation: " + std::string(channel.fault().detail),
                channel.fault().violation);
    return;
  }
  // Room the worker made may let a fragmented task continue.
  if (channel.writing_task() != WorkerSlot::kNoTask && write_task_locked(slot)) channel.publish();
}

void PoolCore::on_frame_locked(WorkerSlot& slot, const WorkerChannel::Frame& frame) {
  switch (frame.header.type) {
    case FrameType::kReady: {
      std::vector<std::string> names;
      if (slot.state() != State::kStarting || !decode_handler_names(frame.payload, names)) {
        kill_locked(slot, "protocol violation: unexpected or malformed READY",
                    ProtocolViolation::BadFrame);
        return;
      }
      if (handlers_.announce(names) == HandlerRegistry::Announced::kDifferent) {
        kill_locked(slot, "announced different handlers than the pool's other workers",
                    ProtocolViolation::HandlerMismatch);
        return;
      }
      slot.process.became_ready(Clock::now());
      slot.load.last_active = slot.process.ready_at;
      PoolEvent ready;
      ready.kind = PoolEvent::Kind::WorkerReady;
      ready.pid = slot.pid();
      emit_locked(slot, std::move(ready));
      if (options_.on_event) kick();  // the supervisor thread runs the event
      changed_.notify_all();
      return;
    }
    case FrameType::kResult:
    case FrameType::kError:
      // A whole answer, within the limits (the channel checked both); moved out of the
      // channel, since it becomes the delivered result.
      complete_locked(slot, frame.header.task_id, frame.header.type == FrameType::kResult,
                      frame.header.flags, slot.channel->take_answer());
      return;
    case FrameType::kProgress:
      progress_locked(slot, frame.header.task_id, slot.channel->take_answer());
      return;
    default:
      kill_locked(slot, "protocol violation: unexpected frame type from worker",
                  ProtocolViolation::BadFrame);
      return;
  }
}

// Streamed results (Task::emit): each one goes into the task's mailbox in the order read, and a
// delivery runs it. Progress for a task that has none (no listener, or resolved already: timed
// out or cancelled while its worker ran on) is dropped.
std::deque<std::uint32_t>::iterator PoolCore::find_on_board(WorkerSlot& slot,
                                                            std::uint64_t task_id) {
  if (!tasks_.holds(task_id)) return slot.load.inflight.end();
  return std::find(slot.load.inflight.begin(), slot.load.inflight.end(),
                   TaskTable::index_of(task_id));
}

void PoolCore::progress_locked(WorkerSlot& slot, std::uint64_t task_id, std::string data) {
  const std::uint32_t index = TaskTable::index_of(task_id);
  if (find_on_board(slot, task_id) == slot.load.inflight.end()) {
    kill_locked(slot,
                "protocol violation: progress for task " + std::to_string(task_id) +
                    ", which is not on board",
                ProtocolViolation::BadAnswer);
    return;
  }
  TaskRecord& task = tasks_[index];
  if (!task.progress) return;
  task.progress->push_progress(std::move(data), task.attempts, slot.pid());
  deliveries_.push_back(Delivery{{}, {}, std::nullopt, slot.pid(), {}, task.progress});
  if (!slot.load.held_by && task.progress->backlogged()) slot.load.held_by = task.progress;
}

void PoolCore::complete_locked(WorkerSlot& slot, std::uint64_t task_id, bool ok,
                               std::uint16_t flags, std::string body) {
  const bool chunk = (flags & kFrameChunk) != 0;
  const std::uint32_t index = TaskTable::index_of(task_id);
  const auto on_board = find_on_board(slot, task_id);
  if (on_board == slot.load.inflight.end()) {
    kill_locked(slot,
                "protocol violation: answer for task " + std::to_string(task_id) +
                    ", which is not on board",
                ProtocolViolation::BadAnswer);
    return;
  }
  if (chunk != (ok && tasks_[index].chunk_items != 0)) {
    kill_locked(slot,
                chunk ? "protocol violation: chunked answer for a task that is not a chunk"
                      : "protocol violation: plain answer for a chunked task",
                ProtocolViolation::BadAnswer);
    return;
  }
  slot.load.last_answered_id = task_id;
  --slot.load.on_board[static_cast<std::size_t>(tasks_[index].priority)];
  if (on_board == slot.load.inflight.begin()) {
    slot.load.inflight.pop_front();  // the usual case: answers come in dispatch order
  } else {
    slot.load.inflight.erase(on_board);
  }
  const auto now = Clock::now();
  if (!slot.load.inflight.empty()) {  // the next task starts now: its timeout counts from here
    TaskRecord& next = tasks_[slot.load.inflight[next_served_locked(slot)]];
    if (next.began == Clock::time_point{}) {
      next.began = now;
      slot.load.head_began = now;
      if (next.timeout.count() != 0) {
        slot.load.next_scan = std::min(slot.load.next_scan, now + next.timeout);
        wake_for_locked(slot.load.next_scan);
      }
    }
  }
  slot.load.last_active = now;
  // Memory limits are looked at after tasks too (a leak shows at the task that made it), at most
  // every kMemoryCheckAfterTask per worker: the check reads /proc.
  if (memory_watched() && slot.process.next_memory_check > now + kMemoryCheckAfterTask) {
    slot.process.next_memory_check = now + kMemoryCheckAfterTask;
    wake_for_locked(slot.process.next_memory_check);
  }
  TaskRecord& task = tasks_[index];
  adapt_depth_locked(slot, task, now);  // the service time also decides whether to spin
  if (task.abandoned) {  // resolved earlier (cancelled or timed out); drop the late answer
    free_task_locked(index);
    return;
  }
  running_ -= tasks_in(task);
  run_time_.record(micros_between(task.dispatched, now), tasks_in(task));
  if (!ok && !task.members.empty()) {
    // A coalesced frame failed as a whole (its results did not fit in a frame, say): that is
    // none of its members' doing, and each may well succeed alone.
    requeue_members_locked(index, false);
    return;
  }
  if (ok && task.chunk_items != 0) {
    bool out_of_memory = false;
    const bool detailed = (flags & kFrameErrorDetail) != 0;
    const std::int64_t failures =
        check_chunk_results(body, task.chunk_items, detailed, out_of_memory);
    if (failures < 0) {
      if (!task.members.empty()) {
        requeue_members_locked(index, false);  // the worker's fault: its members go again
      } else {
        resolve_locked(index, {},
                       TaskError(TaskError::Kind::WorkerCrashed,
                                 "protocol violation: malformed chunk answer from " +
                                     describe_slot(slot) + ", which was killed",
                                 slot.pid()));
        free_task_locked(index);
      }
      kill_locked(slot, "protocol violation: malformed chunk answer", ProtocolViolation::BadAnswer);
      return;
    }
    // An older worker's item errors are plain messages: put them in the detailed form, which is
    // what the items' callbacks read (item_error).
    if (!detailed && failures > 0) body = detailed_chunk_results(body);
    slot.load.tasks_done += task.chunk_items - static_cast<std::uint64_t>(failures);
    slot.load.tasks_failed += static_cast<std::uint64_t>(failures);
    slot.load.slot_tasks_done += task.chunk_items - static_cast<std::uint64_t>(failures);
    slot.load.slot_tasks_failed += static_cast<std::uint64_t>(failures);
    if (out_of_memory && slot.state() == State::kReady) {  // recycled, as for a plain task
      slot.process.drain();
      kick();
    }
    resolve_locked(index, std::move(body), std::nullopt, slot.pid(),
                   static_cast<std::uint32_t>(failures));
  } else if (ok) {
    ++slot.load.tasks_done;
    ++slot.load.slot_tasks_done;
    resolve_locked(index, std::move(body), std::nullopt, slot.pid());
  } else {
    ++slot.load.tasks_failed;
    ++slot.load.slot_tasks_failed;
    ErrorDetail detail;
    const bool decoded = (flags & kFrameErrorDetail) != 0
                             ? decode_error_detail(as_bytes(body), detail)
                             : decode_error(as_bytes(body), detail.code, detail.message);
    const WorkerErrorCode code = detail.code;
    const std::string_view message = detail.message;
    if (!decoded) {
      resolve_locked(index, {},
                     TaskError(TaskError::Kind::WorkerCrashed,
                               "protocol violation: malformed error frame from " +
                                   describe_slot(slot) + ", which was killed",
                               slot.pid()));
      free_task_locked(index);
      kill_locked(slot, "protocol violation: malformed error frame", ProtocolViolation::BadAnswer);
      return;
    }
    TaskError::Kind kind = kind_of(code);
    if (code == WorkerErrorCode::kMemoryLimit) {
      // Out of memory inside the handler (at RLIMIT_DATA, or the machine's): the heap may be in
      // any state, so the worker is recycled once the tasks on board are answered.
      kind = TaskError::Kind::MemoryLimit;
      std::string text =
          describe_slot(slot) + " ran out of memory in the handler (" + std::string(message) + ")";
      if (options_.max_rss_hard != 0) {
        text += "; its RLIMIT_DATA is max_rss_hard " + mebibytes_text(options_.max_rss_hard);
      }
      slot.process.drain();
      kick();
      resolve_locked(
          index, {},
          TaskError(kind, text, slot.pid()).with_exception(std::string(detail.type), {}));
      free_task_locked(index);
      return;
    }
    resolve_locked(index, {},
                   with_report(TaskError(kind, std::string(message), slot.pid()), detail));
  }
  free_task_locked(index);
}

// The adaptive pipeline: the worker was busy with this task since the later of its dispatch and
// the previous answer; an EWMA (1/16) of that is its time per task, and the depth keeps about
// kPipelineWork of work queued behind the task it runs.
void PoolCore::adapt_depth_locked(WorkerSlot& slot, const TaskRecord& task, Clock::time_point now) {
  const Clock::time_point began = std::max(slot.load.last_answer, task.dispatched);
  slot.load.last_answer = now;
  // Per task: a coalesced frame's time is its members' (their count sizes the next frame).
  const auto busy = std::chrono::duration_cast<std::chrono::nanoseconds>(now - began).count();
  slot.load.service_ns = AdaptiveDepth::next_service_ns(
      slot.load.service_ns, busy / static_cast<std::int64_t>(tasks_in(task)));
  slot.load.depth = AdaptiveDepth::depth(slot.load.service_ns);
}

bool PoolCore::answers_soon_locked() const noexcept {
  for (const WorkerSlot& slot : slots_) {
    if (slot.live() && !slot.load.inflight.empty() && !ring_held(slot) &&
        slot.load.service_ns <
            std::chrono::duration_cast<std::chrono::nanoseconds>(kSpinWorthy).count()) {
      return true;
    }
  }
  return false;
}

}  // namespace procpool::detail
