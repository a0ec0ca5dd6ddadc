// MapRun's window of lines in flight: lines submitted in batches into result slots, completions
// filling them (any thread), and results taken out in order (or as they come with --unordered).

#include "map/map_run.hpp"

#include <poll.h>         // poll: is input readable
#include <sys/eventfd.h>  // eventfd_write: wake the main thread

#include <algorithm>  // std::min, std::max

#include "common/text_format.hpp"

namespace procpool::tool {

void MapRun::complete(std::size_t slot_index, const TaskOutcome& outcome) noexcept {
  Slot& slot = slots_[slot_index];
  if (options_.progress && has_task_progress_.load(std::memory_order_relaxed)) {
    forget_task_progress(slot.line);
  }
  SlotState state = kOk;
  if (outcome.ok()) {
    slot.text.assign(outcome.value());
  } else {
    const TaskError& error = *outcome.error();
    slot.kind = error.kind();
    slot.text.assign(error.what());
    if (error.kind() == TaskError::Kind::PoolFailed) {
      // After the pool failed (a worker that keeps dying at start), every queued and every
      // new task fails with this; reported once, not per line.
      state = kPoolFailed;
    } else if (error.kind() == TaskError::Kind::ShuttingDown) {
      // Our own shutdown, after a signal: the task never started, or a stop at once
      // (Pool::terminate) killed its worker.
      state = kNotCompleted;
    } else if (error.kind() == TaskError::Kind::WorkerCrashed && stopped_by_us()) {
      // Its worker was killed because the grace ran out, or by a stop at once.
      state = kNotCompleted;
    } else {
      state = kFailed;
    }
  }
  if (slot.text.size() > kSmallResult) {
    pending_result_bytes_.fetch_add(slot.text.size(), std::memory_order_relaxed);
  }
  std::uint64_t ticket = slot_index;
  if (options_.unordered) {
    slot.state.store(state, std::memory_order_relaxed);  // published by done_ below
    ticket = done_tail_.fetch_add(1, std::memory_order_relaxed);
    // SYNC POINT (Dekker with sleep_until_work): this seq_cst store and the seq_cst load of
    // sleeping_ below, against the main thread's seq_cst store of sleeping_ and its seq_cst
    // re-check: either the main thread sees this result before it sleeps, or we see it
    // sleeping and wake it.
    done_[ticket & kWindowMask].store(static_cast<std::uint32_t>(slot_index + 1),
                                      std::memory_order_seq_cst);
  } else {
    slot.state.store(state, std::memory_order_seq_cst);  // SYNC POINT: as above
  }
  if (sleeping_.load(std::memory_order_seq_cst) &&
      wait_ticket_.load(std::memory_order_relaxed) == ticket &&
      sleeping_.exchange(false, std::memory_order_acq_rel)) {
    ::eventfd_write(wake_fd_, 1);
  }
}

void MapRun::complete_chunked(std::size_t slot_index, const TaskOutcome& outcome) noexcept {
  if (!outcome.ok()) {
    switch (outcome.error()->kind()) {
      case TaskError::Kind::HandlerError:  // the line's own failure
      case TaskError::Kind::ShuttingDown:  // our stop
      case TaskError::Kind::PoolFailed:
      case TaskError::Kind::QueueFull:
        break;
      case TaskError::Kind::WorkerCrashed:
        if (stopped_by_us()) break;
        [[fallthrough]];
      default:  // the chunk failed as a whole, or may have (PayloadTooLarge, MemoryLimit)
        try {
          pool_.submit(
              options_.handler, slots_[slot_index].input, task_options_,
              [this, slot_index](const TaskOutcome& alone) { complete(slot_index, alone); });
          return;
        } catch (...) {  // no memory for the task: the chunk's failure stands for the line
        }
        break;
    }
  }
  complete(slot_index, outcome);
}

bool MapRun::stopped_by_us() const noexcept {
  if (forced_.load(std::memory_order_acquire)) return true;
  const std::int64_t deadline = grace_deadline_ns_.load(std::memory_order_acquire);
  return deadline != 0 && now_ns() >= deadline;
}

std::uint64_t MapRun::in_flight_cap() const {
  std::uint64_t cap = std::max(kSlowStartLines, 2 * emitted_);
  if (emitted_bytes_ != 0) {
    const double mean = static_cast<double>(emitted_bytes_) / static_cast<double>(emitted_);
    const double fit = static_cast<double>(kMaxPendingResultBytes) / mean;
    cap = std::min(cap, fit < 1 ? std::uint64_t{1} : static_cast<std::uint64_t>(fit));
  }
  return std::min<std::uint64_t>(cap, kWindow);
}

bool MapRun::has_room() const {
  if (in_flight_ >= in_flight_cap()) return false;
  if (in_flight_bytes_ >= kMaxInFlightBytes ||
      pending_result_bytes_.load(std::memory_order_relaxed) >= kMaxPendingResultBytes) {
    return in_flight_ == 0;
  }
  if (options_.unordered) return !free_chunks_.empty();
  return in_flight_ + kBatch <= kWindow;
}

bool MapRun::input_ready() const {
  pollfd readable{input_fd_, POLLIN, 0};
  return ::poll(&readable, 1, 0) > 0;
}

MapRun::Gathered MapRun::submit_next_batch() {
  std::size_t base = next_line_ & kWindowMask;
  if (options_.unordered) base = free_chunks_.back() * kBatch;
  views_.clear();
  std::uint64_t bytes = 0;
  std::size_t longest = 0;
  bool too_long = false;
  Gathered result = Gathered::kSubmitted;
  const std::size_t most = std::min<std::uint64_t>(kBatch, in_flight_cap() - in_flight_);
  while (views_.size() < most && in_flight_bytes_ + bytes < kMaxInFlightBytes) {
    std::string_view line;
    const LineReader::Next next = reader_.next(line);
    if (next == LineReader::Next::kLine) {
      Slot& slot = slots_[(base + views_.size()) & kWindowMask];
      slot.line = next_line_ + views_.size();
      slot.input_bytes = static_cast<std::uint32_t>(line.size() + 1);  // <= max_payload + 1
      slot.in_flight = true;
      bytes += line.size() + 1;
      longest = std::max(longest, line.size());
      views_.push_back(line);
      continue;
    }
    if (next == LineReader::Next::kTooLong) {
      too_long = true;
      Slot& slot = slots_[(base + views_.size()) & kWindowMask];
      slot.line = next_line_ + views_.size();
      slot.input_bytes = 0;
      slot.in_flight = true;
    } else {
      result = next == LineReader::Next::kEnd ? Gathered::kEnd : Gathered::kNeedInput;
    }
    break;
  }
  const std::size_t count = views_.size();
  const std::size_t lines = count + (too_long ? 1 : 0);
  if (lines == 0) return result;
  if (options_.unordered) {
    chunk_left_[free_chunks_.back()] = lines;
    free_chunks_.pop_back();
  }
  next_line_ += lines;
  in_flight_ += lines;
  in_flight_bytes_ += bytes;
  const std::size_t chunk = chunk_policy_.chunk_lines(Clock::now(), emitted_);
  const std::span<const std::string_view> payloads(views_);
  if (count != 0 && chunk != 0 && longest <= kMaxChunkedLine && options_.timeout.count() == 0) {
    for (std::size_t i = 0; i < count; ++i) {
      slots_[(base + i) & kWindowMask].input.assign(views_[i]);
    }
    pool_.submit_chunked(options_.handler, payloads, chunk, chunk_options_,
                         [this, base](std::size_t i, const TaskOutcome& outcome) {
                           complete_chunked((base + i) & kWindowMask, outcome);
                         });
  } else if (count != 0) {
    TaskOptions streamed;
    if (options_.progress) {  // lines that run alone stream what their handlers emit
      streamed = task_options_;
      streamed.on_progress = [this, base](const TaskProgress& progress) {
        note_task_progress((base + progress.index) & kWindowMask, progress);
      };
    }
    pool_.submit_batch(options_.handler, payloads, options_.progress ? streamed : task_options_,
                       [this, base](std::size_t i, const TaskOutcome& outcome) {
                         complete((base + i) & kWindowMask, outcome);
                       });
  }
  if (too_long) complete((base + count) & kWindowMask, TaskOutcome({}, &too_long_error_));
  return Gathered::kSubmitted;
}

bool MapRun::drain_results() {
  const std::uint64_t before = written_;
  if (options_.unordered) {
    for (;;) {
      std::atomic<std::uint32_t>& entry = done_[done_head_ & kWindowMask];
      const std::uint32_t value = entry.load(std::memory_order_acquire);
      if (value == 0) break;
      entry.store(0, std::memory_order_relaxed);
      ++done_head_;
      const std::size_t index = value - 1;
      emit(slots_[index], slots_[index].state.load(std::memory_order_relaxed));
      if (--chunk_left_[index / kBatch] == 0) free_chunks_.push_back(index / kBatch);
    }
  } else {
    while (in_flight_ != 0) {
      Slot& slot = slots_[next_write_ & kWindowMask];
      const std::uint8_t state = slot.state.load(std::memory_order_acquire);
      if (state == kEmpty) break;
      emit(slot, state);
      ++next_write_;
    }
  }
  return written_ != before;
}

void MapRun::emit(Slot& slot, std::uint8_t state) {
  switch (state) {
    case kOk:
      out_.append_line(slot.text, slot.line);
      ++ok_;
      break;
    case kFailed:
      ++failed_;
      if (options_.empty_on_failure) out_.append_line("", OutputBuffer::kUntracked);
      report("procpool map: line " + std::to_string(slot.line + 1) + ": " +
             std::string(to_string(slot.kind)) + ": " + indent_continuation(slot.text) + "\n");
      break;
    case kNotCompleted:
      not_completed_.push_back(slot.line);
      break;
    default:  // kPoolFailed
      if (!pool_failed_) pool_failure_ = slot.text;
      pool_failed_ = true;
      input_done_ = true;  // read no more: nothing more can run
      ++not_processed_;
      break;
  }
  ++emitted_;
  if (slot.text.size() > kSmallResult) {
    emitted_bytes_ += slot.text.size();
    pending_result_bytes_.fetch_sub(slot.text.size(), std::memory_order_relaxed);
  }
  if (slot.text.capacity() > kKeepCapacity) std::string().swap(slot.text);
  if (slot.input.capacity() > kKeepInputCapacity) std::string().swap(slot.input);
  slot.state.store(kEmpty, std::memory_order_relaxed);
  slot.in_flight = false;
  in_flight_bytes_ -= slot.input_bytes;
  bytes_done_ += slot.input_bytes;
  --in_flight_;
  ++written_;
}

}  // namespace procpool::tool
