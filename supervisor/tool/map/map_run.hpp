#pragma once

// One run of `procpool map` (MapRun): the main thread reads lines, submits them in batches and
// writes results; completions (on pool threads, or on the main thread inside submit_batch)
// fill result slots of the in-flight window. Its member functions are defined by concept:
//   map_run.cpp           the main loop, its sleep, and standard error
//   in_flight_window.cpp  the window of lines in flight: submission, completion, results out
//   interruption.cpp      SIGINT/SIGTERM and failed output: stopping, and what was not completed
//   progress.cpp          the progress line and --stats
//
// SIGINT and SIGTERM (InterruptSignals) end it early. The first: no more input is read or
// submitted, and Pool::shutdown() runs on a helper thread (the pool is built with shutdown_grace
// 0, so queued tasks fail ShuttingDown at once and never start, and stop_grace = --grace, so a
// running task gets that long before its worker is SIGKILLed); the main thread keeps writing
// results as they come. The second: the workers are SIGKILLed now, the pool reaps them, and
// whatever has no result yet is not completed.

#include <atomic>       // slot states, the sleep flag
#include <chrono>       // durations, the progress clock
#include <cstdint>      // std::uint64_t
#include <memory>       // std::unique_ptr
#include <mutex>        // the latest task progress
#include <string>       // results, messages
#include <string_view>  // lines
#include <thread>       // the pool's stopper thread
#include <vector>       // slots, batches

#include "common/error_stream.hpp"
#include "common/interrupt_signals.hpp"
#include "map/chunk_policy.hpp"
#include "map/line_reader.hpp"
#include "map/map_options.hpp"
#include "map/map_tuning.hpp"
#include "map/output_buffer.hpp"
#include "procpool/pool.hpp"

namespace procpool::tool {

class MapRun {
 public:
  using Clock = std::chrono::steady_clock;

  MapRun(const MapOptions& options, Pool& pool, const InterruptSignals& signals,
         ErrorStream& errors, int input_fd, int output_fd, std::uint64_t max_line);
  // The pool's completions point into this object: the pool must be stopped before it goes.
  // run() sees to that; after an exception, it is done here.
  ~MapRun();
  MapRun(const MapRun&) = delete;
  MapRun& operator=(const MapRun&) = delete;

  // Runs to the end of input, or until a signal stops it; stops the pool; returns the exit
  // status.
  int run();

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
    // A chunked line's bytes, written before its chunk is submitted: if the chunk fails as a
    // whole, the completion submits the line again on its own (complete_chunked).
    std::string input;
  };

  // --- completions (any thread) ---

  void complete(std::size_t slot_index, const TaskOutcome& outcome) noexcept;

  // The outcome of one line of a chunk. A failure of the chunk as a whole (its worker died,
  // its results together were too large, ...) reaches every line in it: each such line goes
  // again as a task of its own, with the retries of --retries, so that it fails (or not) as it
  // would have alone, as the pool does with the tasks it packs itself. A line's own failure
  // (the handler threw) and a stop are final.
  void complete_chunked(std::size_t slot_index, const TaskOutcome& outcome) noexcept;

  // True once a failure from a worker crash is our doing: the run was stopped at once, or the
  // grace after the first signal ran out (the pool kills a worker only after its stop_grace,
  // which started after ours).
  bool stopped_by_us() const noexcept;

  static std::int64_t now_ns() noexcept {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
        .count();
  }

  // --- the main thread: signals ---

  // Acts on signals that arrived since the last look: the first starts a graceful stop, the
  // second a stop at once.
  void check_signals();

  void begin_interrupt();

  void stop_at_once();

  // Pool::shutdown() on a helper thread, which wakes the main thread when it returns.
  void start_stopping_pool();

  // Stops the pool and waits until it has stopped (its workers exited and reaped), still acting
  // on signals. False if, after a stop at once, that took longer than kForcedStopBound.
  bool stop_pool();

  // After a stop at once: writes the results that are in; every other line in flight is not
  // completed. A slot whose state is still kEmpty is never read: a late completion may be
  // writing it if the pool did not stop in time.
  void settle_in_flight();

  // A line in flight without a result at a stop at once.
  void give_up(Slot& slot);

  // The summary after a signal: what was done, and which lines to run again.
  void report_interruption();

  // Standard output failed: the run stops at once, as after a second signal, and every line
  // whose result did not get out in full is named as not completed.
  void stop_for_output_failure();

  void report_output_failure();

  // "R results written, F failed, N lines not completed" and the list of the lines not
  // completed, to run again (with the lines whose result did not get out in full).
  std::string completion_report();

  // --- the main thread: standard error (ErrorStream keeps it off the progress line) ---

  // A message in its place among the results (buffered; flushed with them).
  void report(std::string_view text);

  // A message now.
  void say(std::string_view text);

  void flush_errors();

  // --- the main thread: input and results ---

  // Lines in flight that the pending-results budget holds if the results to come are as large
  // as those so far (on average), so that the results piling up behind a slow line in ordered
  // mode stay within it.
  std::uint64_t in_flight_cap() const;

  bool has_room() const;

  // True if input can be read without blocking.
  bool input_ready() const;

  // Gathers up to one batch of buffered lines into consecutive slots and submits them. A line
  // too long to buffer takes the slot after the batch and fails at once, never buffered whole.
  // The batch goes one task per line, or in chunks when chunk_policy_ says the lines are fast
  // (and none of them is long, and there is no --timeout, which is per line).
  Gathered submit_next_batch();

  // Writes every result that is ready (in order unless unordered). True if any was.
  bool drain_results();

  void emit(Slot& slot, std::uint8_t state);

  // Sleeps until results are ready, input is readable (if wanted), a signal arrived, or a
  // bounded time passed.
  void sleep_until_work(bool want_input);

  void show_progress(bool final);
  // --progress, from a pool thread: a report a line's handler emitted (Task::emit), kept as the
  // latest, which the progress line shows.
  void note_task_progress(std::size_t slot_index, const TaskProgress& progress);
  // The line's task is done: its report, if it is the one shown, goes.
  void forget_task_progress(std::uint64_t line) noexcept;

  // Lines with a result written or a failure reported (not those left not completed).
  std::uint64_t done_lines() const { return written_ - not_completed_.size(); }

  void print_stats();

  const MapOptions& options_;
  Pool& pool_;
  const InterruptSignals& signals_;
  ErrorStream& errors_;
  const int input_fd_;
  TaskOptions task_options_;
  TaskOptions chunk_options_;  // a chunk is tried once: its lines are retried on their own
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
  ChunkPolicy chunk_policy_;

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
  // The latest task progress (note_task_progress), for the progress line.
  std::mutex task_progress_mutex_;
  std::uint64_t task_progress_line_ = 0;        // 0-based
  std::string task_progress_;                   // printable, cut short; empty: none yet
  std::atomic<bool> has_task_progress_{false};  // task_progress_ is not empty
};

}  // namespace procpool::tool
