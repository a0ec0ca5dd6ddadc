#include "map/map_command.hpp"

#include <fcntl.h>        // fcntl, F_DUPFD_CLOEXEC
#include <poll.h>         // poll
#include <signal.h>       // signal, SIGPIPE
#include <sys/eventfd.h>  // eventfd: completions wake the main thread
#include <sys/stat.h>     // fstat: input size for the ETA
#include <unistd.h>       // isatty, lseek

#include <algorithm>  // std::find, std::min, std::sort
#include <atomic>     // slot states, the sleep flag
#include <cerrno>     // errno
#include <chrono>     // durations, the progress clock
#include <cstdint>    // std::uint64_t
#include <cstdio>     // std::snprintf
#include <cstdlib>    // std::_Exit
#include <cstring>    // std::strerror
#include <memory>     // std::unique_ptr
#include <optional>   // the pool
#include <string>     // messages, results
#include <thread>     // the pool's stopper and starter threads
#include <vector>     // slots, batches

#include "common/duration.hpp"
#include "common/error_stream.hpp"
#include "common/interrupt_signals.hpp"
#include "common/text_format.hpp"
#include "map/line_ranges.hpp"
#include "map/line_reader.hpp"
#include "map/map_options.hpp"
#include "map/output_buffer.hpp"
#include "procpool/pool.hpp"

namespace procpool::tool {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// ---------------------------------------------------------------------------------------------
// Tuning, measured with docs/workloads.md M1 on 2 cores: batches of 256 to 1024 lines and pipeline
// depths of 32 to 128 all ran at 2.5-3 million lines/s (within the noise). The batch amortises
// the pool's lock over many tasks; the window keeps both workers busy while a slow line holds up
// ordered output.

constexpr std::size_t kWindow = 1 << 16;  // lines in flight: submitted, result not yet written
constexpr std::size_t kWindowMask = kWindow - 1;
constexpr std::size_t kBatch = 512;  // lines per Pool::submit_batch
static_assert(kWindow % kBatch == 0, "unordered mode hands out the window in whole batches");
constexpr std::size_t kWakeBatch = 256;  // results to wait for before waking the main thread
// Input bytes in flight, and bytes of large results waiting to be written (an ordered run
// behind one slow line): both bound memory when lines or results are large.
constexpr std::uint64_t kMaxInFlightBytes = 64ULL << 20;
constexpr std::uint64_t kMaxPendingResultBytes = 256ULL << 20;
constexpr std::size_t kSmallResult = 64;  // results up to this size are not counted above
// Lines in flight before any result is in: the first results tell how large they are, and
// from then on the lines in flight are as many as the pending-results budget holds.
constexpr std::uint64_t kSlowStartLines = 64;
constexpr std::size_t kKeepCapacity = 4096;  // a slot frees a larger result buffer once written
constexpr std::size_t kOutputBuffer = 1 << 20;
constexpr milliseconds kProgressInterval{200};
constexpr int kShortWaitMs = 2;    // bounds output latency while waiting for a batch of results
constexpr int kIdleWaitMs = 1000;  // safety net: every wait is bounded
// A stop at once (second signal): how long the pool may take to reap the workers it killed,
// and how long standard output may take to accept the results that are in.
constexpr std::chrono::seconds kForcedStopBound{2};
constexpr std::chrono::seconds kForcedFlushBound{1};
constexpr std::size_t kMaxPendingErrors = 64 * 1024;  // failure messages buffered, bytes

// ---------------------------------------------------------------------------------------------
// Small helpers

// Standard error once map has set it up (a relay of the workers' output runs), else null.
ErrorStream* g_errors = nullptr;

void write_stderr(std::string_view text) {
  if (g_errors != nullptr) {
    g_errors->message(text);
  } else {
    (void)write_all(STDERR_FILENO, text.data(), text.size());
  }
}

// ---------------------------------------------------------------------------------------------
// The run: the main thread reads, submits and writes; completions (on pool threads, or on the
// main thread inside submit_batch) fill result slots.
//
// SIGINT and SIGTERM (InterruptSignals) end it early. The first: no more input is read or
// submitted, and Pool::shutdown() runs on a helper thread (the pool is built with shutdown_grace
// 0, so queued tasks fail ShuttingDown at once and never start, and stop_grace = --grace, so a
// running task gets that long before its worker is SIGKILLed); the main thread keeps writing
// results as they come. The second: the workers are SIGKILLed now, the pool reaps them, and
// whatever has no result yet is not completed.

class MapRun {
 public:
  MapRun(const MapOptions& options, Pool& pool, const InterruptSignals& signals,
         ErrorStream& errors, int input_fd, int output_fd, std::uint64_t max_line)
      : options_(options),
        pool_(pool),
        signals_(signals),
        errors_(errors),
        input_fd_(input_fd),
        slots_(kWindow),
        reader_(input_fd, max_line),
        out_(output_fd, kOutputBuffer),
        max_line_(max_line) {
    wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (wake_fd_ < 0) throw_errno(errno, "procpool map: eventfd");
    if (options_.unordered) {
      done_ = std::make_unique<std::atomic<std::uint32_t>[]>(kWindow);
      for (std::size_t c = kWindow / kBatch; c > 0; --c) free_chunks_.push_back(c - 1);
    }
    task_options_.timeout = options_.timeout;
    // Known input size (a regular file) gives an ETA from the start.
    struct stat info {};
    if (::fstat(input_fd, &info) == 0 && S_ISREG(info.st_mode)) {
      const off_t at = ::lseek(input_fd, 0, SEEK_CUR);
      if (at >= 0 && info.st_size > at)
        total_bytes_ = static_cast<std::uint64_t>(info.st_size - at);
    }
  }
  // The pool's completions point into this object: the pool must be stopped before it goes.
  // run() sees to that; after an exception, it is done here.
  ~MapRun() {
    if (stopper_.joinable()) {
      stopper_.join();
    } else {
      pool_.shutdown();
    }
    ::close(wake_fd_);
  }
  MapRun(const MapRun&) = delete;
  MapRun& operator=(const MapRun&) = delete;

  // Runs to the end of input, or until a signal stops it; stops the pool; returns the exit
  // status.
  int run() {
    start_ = Clock::now();
    next_progress_ = start_ + kProgressInterval;
    for (;;) {
      check_signals();
      if (out_.failed() && !output_failed_) stop_for_output_failure();
      if (forced_.load(std::memory_order_relaxed)) break;
      bool progressed = drain_results();
      bool want_input = false;
      if (!input_done_ && has_room()) {
        switch (submit_next_batch()) {
          case Gathered::kSubmitted:
            progressed = true;
            break;
          case Gathered::kNeedInput:
            // Never block in read(2): results written meanwhile would wait in out_, and a
            // signal would wait for the next line.
            if (input_ready()) {
              if (!reader_.fill()) {
                report("procpool map: cannot read standard input: " + errno_text(errno) + "\n");
                input_error_ = true;
                input_done_ = true;
              }
              progressed = true;
            } else {
              want_input = true;
            }
            break;
          case Gathered::kEnd:
            input_done_ = true;
            input_ended_ = true;
            break;
        }
      }
      if (input_done_ && in_flight_ == 0) break;
      if (options_.progress && Clock::now() >= next_progress_) show_progress(false);
      if (!progressed) {
        flush_errors();
        out_.flush();
        sleep_until_work(want_input);
      }
    }
    elapsed_s_ = std::chrono::duration<double>(Clock::now() - start_).count();
    const bool pool_stopped = stop_pool();
    if (forced_.load(std::memory_order_relaxed)) settle_in_flight();
    flush_errors();
    out_.flush();
    if (out_.failed() && !output_failed_) {  // the last results failed to go out
      output_failed_ = true;
      say("procpool map: cannot write standard output: " + errno_text(out_.error()) + "\n");
    }
    if (options_.progress) show_progress(true);
    if (pool_failed_) {
      say("procpool map: stopped (" + group_digits(not_processed_) +
          (not_processed_ == 1 ? " line" : " lines") +
          " not processed; the rest of the input was not read): " +
          indent_continuation(pool_failure_) + "\n");
    }
    if (interrupted_) report_interruption();
    if (output_failed_ && !interrupted_) report_output_failure();
    if (options_.stats) print_stats();
    const bool all_ok = failed_ == 0 && not_processed_ == 0 && !input_error_ && !out_.failed();
    const int status = interrupted_ ? kExitSignalBase + signal_ : all_ok ? kExitOk : kExitFailed;
    if (!pool_stopped) {
      // Killed workers not reaped within kForcedStopBound: a late completion may still write
      // into this object, which therefore must not go away. Exit now; the workers die with us
      // (PR_SET_PDEATHSIG).
      std::_Exit(status);
    }
    return status;
  }

 private:
  enum SlotState : std::uint8_t { kEmpty, kOk, kFailed, kPoolFailed, kNotCompleted };
  enum class Gathered : std::uint8_t { kSubmitted, kNeedInput, kEnd };

  // One line in flight. `state` is the hand-over: the completion writes kind and text, then
  // stores state (release); the main thread loads state (acquire), reads them, and stores kEmpty
  // before it submits another line into this slot (the pool's lock orders that store before the
  // next completion).
  struct Slot {
    std::atomic<std::uint8_t> state{kEmpty};
    TaskError::Kind kind{};
    bool in_flight = false;         // main thread only: submitted, not yet written or reported
    std::uint32_t input_bytes = 0;  // main thread only: the line and its newline
    std::uint64_t line = 0;         // main thread only: 0-based line number
    std::string text;               // the result, or the error message
  };

  // --- completions (any thread) ---

  void complete(std::size_t slot_index, const TaskOutcome& outcome) noexcept {
    Slot& slot = slots_[slot_index];
    SlotState state = kOk;
    if (outcome.ok()) {
      slot.text.assign(outcome.value());
    } else {
      const TaskError& error = *outcome.error();
      slot.kind = error.kind();
      slot.text.assign(error.what());
      if (slot.text.starts_with("pool failed: ")) {
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

  // True once a failure from a worker crash is our doing: the run was stopped at once, or the
  // grace after the first signal ran out (the pool kills a worker only after its stop_grace,
  // which started after ours).
  bool stopped_by_us() const noexcept {
    if (forced_.load(std::memory_order_acquire)) return true;
    const std::int64_t deadline = grace_deadline_ns_.load(std::memory_order_acquire);
    return deadline != 0 && now_ns() >= deadline;
  }

  static std::int64_t now_ns() noexcept {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
        .count();
  }

  // --- the main thread: signals ---

  // Acts on signals that arrived since the last look: the first starts a graceful stop, the
  // second a stop at once.
  void check_signals() {
    const int count = signals_.count();
    if (count == seen_signals_) return;
    seen_signals_ = count;
    if (!interrupted_) begin_interrupt();
    if (count >= 2 && !forced_.load(std::memory_order_relaxed)) stop_at_once();
  }

  void begin_interrupt() {
    interrupted_ = true;
    signal_ = signals_.first();
    input_done_ = true;
    grace_deadline_ns_.store(
        now_ns() + std::chrono::duration_cast<std::chrono::nanoseconds>(options_.grace).count(),
        std::memory_order_release);
    const std::string name = signal_name(signal_);
    std::string text = "procpool map: " + name + " received: ";
    if (in_flight_ == 0) {
      text += "stopping the workers";
    } else if (options_.grace.count() == 0) {
      text += "reading no more input, starting no new task, stopping the running ones now";
    } else {
      text += "reading no more input and starting no new task; waiting up to " +
              duration_text(options_.grace) + " for the running ones to finish";
    }
    say(text + " (" + name + " again to stop at once)\n");
    start_stopping_pool();
  }

  void stop_at_once() {
    forced_.store(true, std::memory_order_release);
    forced_at_ = Clock::now();
    say("procpool map: " + signal_name(signal_) +
        " again: stopping at once; the workers are killed\n");
    start_stopping_pool();
    // SIGKILLs every worker and waits for the reaps (milliseconds); the tasks they had fail
    // ShuttingDown, and the stopper's shutdown() returns with it.
    pool_.terminate();
  }

  // Pool::shutdown() on a helper thread, which wakes the main thread when it returns.
  void start_stopping_pool() {
    if (stopper_.joinable()) return;
    stopper_ = start_thread_without_signals([this] {
      pool_.shutdown();
      pool_stopped_.store(true, std::memory_order_release);
      ::eventfd_write(wake_fd_, 1);
    });
  }

  // Stops the pool and waits until it has stopped (its workers exited and reaped), still acting
  // on signals. False if, after a stop at once, that took longer than kForcedStopBound.
  bool stop_pool() {
    start_stopping_pool();
    for (;;) {
      check_signals();
      if (pool_stopped_.load(std::memory_order_acquire)) {
        stopper_.join();
        return true;
      }
      int timeout_ms = kIdleWaitMs;
      if (forced_.load(std::memory_order_relaxed)) {
        const auto left =
            std::chrono::ceil<milliseconds>(forced_at_ + kForcedStopBound - Clock::now()).count();
        if (left <= 0) return false;
        timeout_ms = static_cast<int>(std::min<std::int64_t>(timeout_ms, left));
      }
      pollfd fds[2] = {{wake_fd_, POLLIN, 0}, {signals_.fd(), POLLIN, 0}};
      if (::poll(fds, 2, timeout_ms) > 0) {
        eventfd_t value;
        if ((fds[0].revents & POLLIN) != 0) (void)::eventfd_read(wake_fd_, &value);
        if ((fds[1].revents & POLLIN) != 0) signals_.drain();
      }
    }
  }

  // After a stop at once: writes the results that are in; every other line in flight is not
  // completed. A slot whose state is still kEmpty is never read: a late completion may be
  // writing it if the pool did not stop in time.
  void settle_in_flight() {
    out_.set_deadline(Clock::now() + kForcedFlushBound);
    error_deadline_ = Clock::now() + kForcedFlushBound;
    drain_results();
    if (!options_.unordered) {
      while (in_flight_ != 0) {
        Slot& slot = slots_[next_write_ & kWindowMask];
        const std::uint8_t state = slot.state.load(std::memory_order_acquire);
        if (state == kEmpty) {
          give_up(slot);
        } else {
          emit(slot, state);
        }
        ++next_write_;
      }
      return;
    }
    for (Slot& slot : slots_) {  // unordered: the results in were drained through done_
      if (slot.in_flight) give_up(slot);
    }
  }

  // A line in flight without a result at a stop at once.
  void give_up(Slot& slot) {
    not_completed_.push_back(slot.line);
    slot.in_flight = false;
    in_flight_bytes_ -= slot.input_bytes;
    --in_flight_;
    ++written_;
  }

  // The summary after a signal: what was done, and which lines to run again.
  void report_interruption() {
    std::string text = "procpool map: interrupted by " + signal_name(signal_);
    if (forced_.load(std::memory_order_relaxed)) text += ", stopped at once";
    if (out_.failed()) text += ", standard output failed (" + errno_text(out_.error()) + ")";
    text += ": " + completion_report();
    if (out_.abandoned()) {
      text += "procpool map: standard output did not take the results within " +
              duration_text(std::chrono::duration_cast<milliseconds>(kForcedFlushBound)) +
              ": some of those written above are missing from it\n";
    }
    say(text);
  }

  // Standard output failed: the run stops at once, as after a second signal, and every line
  // whose result did not get out in full is named as not completed.
  void stop_for_output_failure() {
    output_failed_ = true;
    input_done_ = true;
    say("procpool map: cannot write standard output: " + errno_text(out_.error()) +
        "; stopping: the workers are killed\n");
    forced_.store(true, std::memory_order_release);
    forced_at_ = Clock::now();
    start_stopping_pool();
    pool_.terminate();
  }

  void report_output_failure() {
    say("procpool map: stopped, standard output failed (" + errno_text(out_.error()) +
        "): " + completion_report());
  }

  // "R results written, F failed, N lines not completed" and the list of the lines not
  // completed, to run again (with the lines whose result did not get out in full).
  std::string completion_report() {
    not_completed_.insert(not_completed_.end(), out_.lost().begin(), out_.lost().end());
    std::sort(not_completed_.begin(), not_completed_.end());
    const std::uint64_t missing = not_completed_.size();
    const std::uint64_t results = ok_ - out_.lost().size();
    std::string text = group_digits(results) + (results == 1 ? " result" : " results") +
                       " written, " + group_digits(failed_) + " failed, " + group_digits(missing) +
                       (missing == 1 ? " line" : " lines") + " not completed\n";
    // The first line not submitted, if the input goes on.
    const std::uint64_t rest = input_ended_ ? kNoLine : next_line_;
    if (missing != 0 || rest != kNoLine) {
      text += "procpool map: not completed: " + line_ranges(not_completed_, rest) + "\n";
    }
    return text;
  }

  // --- the main thread: standard error (ErrorStream keeps it off the progress line) ---

  // A message in its place among the results (buffered; flushed with them).
  void report(std::string_view text) {
    pending_errors_ += text;
    if (pending_errors_.size() >= kMaxPendingErrors) flush_errors();
  }

  // A message now.
  void say(std::string_view text) {
    flush_errors();
    errors_.message(text, error_deadline_);
  }

  void flush_errors() {
    if (pending_errors_.empty()) return;
    errors_.message(pending_errors_, error_deadline_);
    pending_errors_.clear();
  }

  // --- the main thread: input and results ---

  // Lines in flight that the pending-results budget holds if the results to come are as large
  // as those so far (on average), so that the results piling up behind a slow line in ordered
  // mode stay within it.
  std::uint64_t in_flight_cap() const {
    std::uint64_t cap = std::max(kSlowStartLines, 2 * emitted_);
    if (emitted_bytes_ != 0) {
      const double mean = static_cast<double>(emitted_bytes_) / static_cast<double>(emitted_);
      const double fit = static_cast<double>(kMaxPendingResultBytes) / mean;
      cap = std::min(cap, fit < 1 ? std::uint64_t{1} : static_cast<std::uint64_t>(fit));
    }
    return std::min<std::uint64_t>(cap, kWindow);
  }

  bool has_room() const {
    if (in_flight_ >= in_flight_cap()) return false;
    if (in_flight_bytes_ >= kMaxInFlightBytes ||
        pending_result_bytes_.load(std::memory_order_relaxed) >= kMaxPendingResultBytes) {
      return in_flight_ == 0;
    }
    if (options_.unordered) return !free_chunks_.empty();
    return in_flight_ + kBatch <= kWindow;
  }

  // True if input can be read without blocking.
  bool input_ready() const {
    pollfd readable{input_fd_, POLLIN, 0};
    return ::poll(&readable, 1, 0) > 0;
  }

  // Gathers up to one batch of buffered lines into consecutive slots and submits them. A line
  // too long to buffer takes the slot after the batch and fails at once, never buffered whole.
  Gathered submit_next_batch() {
    std::size_t base = next_line_ & kWindowMask;
    if (options_.unordered) base = free_chunks_.back() * kBatch;
    views_.clear();
    std::uint64_t bytes = 0;
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
    if (count != 0) {
      pool_.submit_batch(options_.handler, std::span<const std::string_view>(views_), task_options_,
                         [this, base](std::size_t i, const TaskOutcome& outcome) {
                           complete((base + i) & kWindowMask, outcome);
                         });
    }
    if (too_long) complete((base + count) & kWindowMask, TaskOutcome({}, &too_long_error_));
    return Gathered::kSubmitted;
  }

  // Writes every result that is ready (in order unless unordered). True if any was.
  bool drain_results() {
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

  void emit(Slot& slot, std::uint8_t state) {
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
    slot.state.store(kEmpty, std::memory_order_relaxed);
    slot.in_flight = false;
    in_flight_bytes_ -= slot.input_bytes;
    bytes_done_ += slot.input_bytes;
    --in_flight_;
    ++written_;
  }

  // Sleeps until results are ready, input is readable (if wanted), a signal arrived, or a
  // bounded time passed.
  void sleep_until_work(bool want_input) {
    int timeout_ms = options_.progress ? static_cast<int>(kProgressInterval.count()) : kIdleWaitMs;
    bool armed = false;
    if (in_flight_ != 0) {
      // Wait for a batch of results rather than the next one, so that a fast stream costs one
      // wake-up per batch; the short timeout bounds the delay when results trickle in.
      std::uint64_t ticket = 0;
      if (options_.unordered) {
        ticket = done_head_ + std::min<std::uint64_t>(in_flight_, kWakeBatch) - 1;
        if (done_[ticket & kWindowMask].load(std::memory_order_relaxed) != 0) ticket = done_head_;
      } else {
        ticket = (next_write_ + std::min<std::uint64_t>(in_flight_, kWakeBatch) - 1) & kWindowMask;
        if (slots_[ticket].state.load(std::memory_order_relaxed) != kEmpty) {
          ticket = next_write_ & kWindowMask;
        }
      }
      if (in_flight_ > kWakeBatch) timeout_ms = kShortWaitMs;
      wait_ticket_.store(ticket, std::memory_order_relaxed);
      sleeping_.store(true, std::memory_order_seq_cst);
      // SYNC POINT: the re-check after announcing the sleep (see complete()).
      const bool ready = options_.unordered
                             ? done_[ticket & kWindowMask].load(std::memory_order_seq_cst) != 0
                             : slots_[ticket].state.load(std::memory_order_seq_cst) != kEmpty;
      if (ready) {
        sleeping_.store(false, std::memory_order_relaxed);
        return;
      }
      armed = true;
    }
    pollfd fds[3] = {{wake_fd_, POLLIN, 0}, {signals_.fd(), POLLIN, 0}, {input_fd_, POLLIN, 0}};
    const int ready = ::poll(fds, want_input ? 3 : 2, timeout_ms);
    if (armed) sleeping_.store(false, std::memory_order_relaxed);
    if (ready > 0 && (fds[0].revents & POLLIN) != 0) {
      eventfd_t value;
      (void)::eventfd_read(wake_fd_, &value);
    }
    if (ready > 0 && (fds[1].revents & POLLIN) != 0) signals_.drain();
  }

  void show_progress(bool final) {
    flush_errors();  // messages gathered so far go above the progress line
    const auto now = Clock::now();
    next_progress_ = now + kProgressInterval;
    const double elapsed = std::chrono::duration<double>(now - start_).count();
    const std::uint64_t done = done_lines();
    const double rate = elapsed > 0 ? static_cast<double>(done) / elapsed : 0;
    std::string line = "\rprocpool map: " + group_digits(done) + " lines";
    if (failed_ != 0) line += ", " + group_digits(failed_) + " failed";
    line += ", " + short_rate(rate) + " lines/s";
    double fraction = -1;
    if (input_done_ && next_line_ != 0) {
      fraction = static_cast<double>(written_) / static_cast<double>(next_line_);
    } else if (total_bytes_ != 0) {
      fraction =
          std::min(1.0, static_cast<double>(bytes_done_) / static_cast<double>(total_bytes_));
    }
    if (fraction >= 0 && !final && !interrupted_) {  // interrupted: no end to estimate
      char percent[16];
      std::snprintf(percent, sizeof percent, "%.0f%%", fraction * 100);
      line += std::string(", ") + percent;
      if (fraction > 0) line += ", ETA " + clock_time(elapsed * (1 - fraction) / fraction);
    }
    if (final) line += " in " + clock_time(elapsed);
    line += errors_.tty() ? "\033[K" : "   ";
    if (final) line += "\n";
    errors_.progress(line, final);
  }

  // Lines with a result written or a failure reported (not those left not completed).
  std::uint64_t done_lines() const { return written_ - not_completed_.size(); }

  void print_stats() {
    const PoolMetrics metrics = pool_.metrics();
    const double rate = elapsed_s_ > 0 ? static_cast<double>(done_lines()) / elapsed_s_ : 0;
    char text[512];
    std::snprintf(text, sizeof text,
                  "procpool map: %llu tasks, %llu failed, %llu retried, %llu restarts, "
                  "%.3f s elapsed, %.0f lines/s\n",
                  static_cast<unsigned long long>(done_lines()),
                  static_cast<unsigned long long>(failed_ + not_processed_),
                  static_cast<unsigned long long>(metrics.retried),
                  static_cast<unsigned long long>(metrics.restarts), elapsed_s_, rate);
    say(text);
  }

  const MapOptions& options_;
  Pool& pool_;
  const InterruptSignals& signals_;
  ErrorStream& errors_;
  const int input_fd_;
  TaskOptions task_options_;
  std::vector<Slot> slots_;
  LineReader reader_;
  OutputBuffer out_;
  std::string pending_errors_;  // failure messages, written with the output
  Deadline error_deadline_;     // set for a stop at once
  const std::uint64_t max_line_;
  const TaskError too_long_error_{
      TaskError::Kind::PayloadTooLarge,
      "line longer than max_payload (" + std::to_string(max_line_) + " bytes)"};
  std::vector<std::string_view> views_;

  // Main thread only.
  std::uint64_t next_line_ = 0;      // lines submitted (the next line's 0-based number)
  std::uint64_t next_write_ = 0;     // ordered: the next line to write
  std::uint64_t written_ = 0;        // results written or reported
  std::uint64_t ok_ = 0;             // results given to out_ (some may be lost: out_.lost())
  std::uint64_t emitted_ = 0;        // results and failures taken from their slots
  std::uint64_t emitted_bytes_ = 0;  // of those, the bytes of the large ones (kSmallResult)
  bool output_failed_ = false;       // standard output failed, and the run was stopped
  std::uint64_t in_flight_ = 0;      // submitted, not yet written
  std::uint64_t in_flight_bytes_ = 0;
  std::uint64_t bytes_done_ = 0;
  std::uint64_t total_bytes_ = 0;  // of the input, if known (a regular file), else 0
  std::uint64_t failed_ = 0, not_processed_ = 0;
  bool input_done_ = false, input_error_ = false;
  bool input_ended_ = false;  // the end of the input was reached and every line submitted
  bool pool_failed_ = false;
  std::string pool_failure_;
  Clock::time_point start_{}, next_progress_{};
  double elapsed_s_ = 0;
  // Unordered mode: the window is handed out in chunks of kBatch slots, one per batch, free
  // again once all their results are written.
  std::vector<std::size_t> free_chunks_;
  std::size_t chunk_left_[kWindow / kBatch] = {};
  std::uint64_t done_head_ = 0;  // next done_ entry to read
  // Interruption.
  int seen_signals_ = 0;
  bool interrupted_ = false;
  int signal_ = 0;                            // the first signal
  Clock::time_point forced_at_{};             // when the stop at once began
  std::vector<std::uint64_t> not_completed_;  // 0-based lines, reported at the end
  std::thread stopper_;                       // runs Pool::shutdown()

  // Shared with completions, each on its own cache line (written by different threads).
  // Unordered mode: completed slot indices + 1 in completion order (0 = not yet), a
  // multi-producer ring that cannot overflow: at most kWindow lines are in flight.
  std::unique_ptr<std::atomic<std::uint32_t>[]> done_;
  alignas(64) std::atomic<std::uint64_t> done_tail_{0};
  alignas(64) std::atomic<std::uint64_t> pending_result_bytes_{0};
  alignas(64) std::atomic<bool> sleeping_{false};  // the main thread is (about to be) in poll
  std::atomic<std::uint64_t> wait_ticket_{0};      // the result it waits for
  // Set by the main thread, read by completions: the grace's end after the first signal (ns
  // of Clock, 0 = no signal yet), and the stop at once.
  alignas(64) std::atomic<std::int64_t> grace_deadline_ns_{0};
  std::atomic<bool> forced_{false};
  std::atomic<bool> pool_stopped_{false};  // set by the stopper thread
  int wake_fd_ = -1;
};

}  // namespace

int run_map_command(std::span<char* const> args, const CommandContext& context) {
  int status = kExitOk;
  const std::optional<MapOptions> options = parse_map_options(args, status);
  if (!options) return status;

  // Workers inherit our stdout (PoolOptions has no way to redirect it): keep the real one for
  // results under a private fd, and likewise the real stderr. File descriptors 1 (the workers'
  // stdout) and 2 (where the pool copies the workers' stderr) then go to a relay that writes
  // their lines to the real stderr, never into the progress line; so a worker that prints
  // cannot corrupt the output either.
  // Results that go nowhere are no success: refuse a closed or read-only standard output
  // before anything starts.
  const int output_flags = ::fcntl(STDOUT_FILENO, F_GETFL);
  if (context.stdout_was_closed || output_flags < 0) {
    write_stderr("procpool map: standard output is closed: the results would go nowhere\n");
    return kExitUsage;
  }
  if ((output_flags & O_ACCMODE) == O_RDONLY) {
    write_stderr("procpool map: standard output is not open for writing\n");
    return kExitUsage;
  }
  const int output_fd = ::fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3);
  const int error_fd = ::fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
  if (output_fd < 0 || error_fd < 0) {
    write_stderr("procpool map: cannot set up standard output and error: " + errno_text(errno) +
                 "\n");
    return kExitFailed;
  }
  ErrorStream errors(error_fd, ::isatty(error_fd) == 1);
  std::optional<StderrRelay> relay;
  try {
    relay.emplace(errors);
  } catch (const Error& e) {
    write_stderr(std::string("procpool map: ") + e.what() + "\n");
    return kExitFailed;
  }
  g_errors = &errors;  // write_stderr() goes through it from here on, until it goes
  struct ForgetErrors {
    ~ForgetErrors() { g_errors = nullptr; }
  } forget_errors;
  // A closed pipe on stdout becomes EPIPE from write(2), which stops the run. (The
  // launcher resets every signal disposition in the workers.)
  ::signal(SIGPIPE, SIG_IGN);

  std::optional<InterruptSignals> signals;
  try {
    signals.emplace();
  } catch (const Error& e) {
    write_stderr(std::string("procpool map: cannot handle SIGINT and SIGTERM: ") + e.what() + "\n");
    return kExitFailed;
  }

  PoolOptions pool_options;
  pool_options.executable = options->worker;
  pool_options.args = options->worker_args;
  pool_options.min_workers = options->workers;
  pool_options.max_workers = options->workers;
  pool_options.max_attempts = options->retries + 1;
  // A task's timeout runs from its dispatch to a worker: with tasks queued on board, time spent
  // behind a slow task would count. With a timeout, each worker holds one task at a time.
  // (Otherwise the pool's default depth: 64 measured no faster on M1, and a deeper pipeline
  // holds more tasks hostage behind a slow one.)
  if (options->timeout.count() > 0) pool_options.pipeline_depth = 1;
  // The pool is stopped only once every result is in, or after a signal (MapRun). Then tasks
  // still queued must not start (shutdown_grace 0: they fail ShuttingDown at once), and a
  // running task gets --grace: the shutdown frame lets its worker finish it and exit, and the
  // worker is SIGKILLed after stop_grace.
  pool_options.shutdown_grace = milliseconds(0);
  pool_options.stop_grace = options->grace;

  // The pool is built on a thread that blocks SIGINT and SIGTERM, so that the threads it starts
  // (which inherit that) never run our handler. Meanwhile a signal ends the run at once: no
  // line was read yet, and the workers started so far die with us (PR_SET_PDEATHSIG).
  std::optional<Pool> pool;
  std::string start_error;
  const int started_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (started_fd < 0) {
    write_stderr("procpool map: eventfd: " + errno_text(errno) + "\n");
    return kExitFailed;
  }
  std::thread starter = start_thread_without_signals([&] {
    try {
      pool.emplace(pool_options);
    } catch (const std::exception& e) {
      start_error = e.what();
      if (start_error.empty()) start_error = "the pool could not start";
    }
    ::eventfd_write(started_fd, 1);
  });
  for (;;) {
    pollfd fds[2] = {{started_fd, POLLIN, 0}, {signals->fd(), POLLIN, 0}};
    const int ready = ::poll(fds, 2, kIdleWaitMs);
    if (signals->count() != 0) {
      write_stderr("procpool map: interrupted by " + signal_name(signals->first()) +
                   " while the workers were starting; no line was read\n");
      std::_Exit(signals->exit_status());
    }
    if (ready > 0 && (fds[0].revents & POLLIN) != 0) break;
  }
  starter.join();
  ::close(started_fd);
  if (!pool) {
    std::string_view what = start_error;
    if (what.starts_with("procpool::Pool: ")) what.remove_prefix(16);
    write_stderr("procpool map: " + indent_continuation(what) + "\n");
    return kExitUsage;
  }
  const std::vector<std::string> handlers = pool->handlers();
  if (std::find(handlers.begin(), handlers.end(), options->handler) == handlers.end()) {
    std::string known;
    for (const std::string& name : handlers) known += (known.empty() ? "" : ", ") + name;
    write_stderr("procpool map: " + options->worker + " has no handler named '" + options->handler +
                 "' (it has: " + known + ")\n");
    return kExitUsage;
  }
  try {
    MapRun run(*options, *pool, *signals, errors, STDIN_FILENO, output_fd,
               pool_options.max_payload);
    status = run.run();  // stops the pool
  } catch (const std::exception& e) {
    write_stderr(std::string("procpool map: ") + e.what() + "\n");
    return kExitFailed;
  }
  return status;
}

}  // namespace procpool::tool
