// MapRun's main loop: read, submit, write, sleep until there is work; and its standard error.

#include "map/map_run.hpp"

#include <poll.h>         // poll
#include <sys/eventfd.h>  // eventfd: completions wake the main thread
#include <sys/stat.h>     // fstat: input size for the ETA
#include <unistd.h>       // lseek, close

#include <cerrno>   // errno
#include <cstdlib>  // std::_Exit

#include "common/exit_status.hpp"
#include "common/text_format.hpp"
#include "procpool/error.hpp"

namespace procpool::tool {

MapRun::MapRun(const MapOptions& options, Pool& pool, const InterruptSignals& signals,
               ErrorStream& errors, int input_fd, int output_fd, std::uint64_t max_line)
    : options_(options),
      pool_(pool),
      signals_(signals),
      errors_(errors),
      input_fd_(input_fd),
      slots_(kWindow),
      reader_(input_fd, max_line),
      out_(output_fd, kOutputBuffer),
      max_line_(max_line),
      chunk_policy_(options.workers, kBatch, Clock::now()) {
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ < 0) throw_errno(errno, "procpool map: eventfd");
  if (options_.unordered) {
    done_ = std::make_unique<std::atomic<std::uint32_t>[]>(kWindow);
    for (std::size_t c = kWindow / kBatch; c > 0; --c) free_chunks_.push_back(c - 1);
  }
  task_options_.timeout = options_.timeout;
  chunk_options_.max_attempts = 1;
  // Known input size (a regular file) gives an ETA from the start.
  struct stat info {};
  if (::fstat(input_fd, &info) == 0 && S_ISREG(info.st_mode)) {
    const off_t at = ::lseek(input_fd, 0, SEEK_CUR);
    if (at >= 0 && info.st_size > at) total_bytes_ = static_cast<std::uint64_t>(info.st_size - at);
  }
}

MapRun::~MapRun() {
  if (stopper_.joinable()) {
    stopper_.join();
  } else {
    pool_.shutdown();
  }
  ::close(wake_fd_);
}

int MapRun::run() {
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

void MapRun::report(std::string_view text) {
  pending_errors_ += text;
  if (pending_errors_.size() >= kMaxPendingErrors) flush_errors();
}

void MapRun::say(std::string_view text) {
  flush_errors();
  errors_.message(text, error_deadline_);
}

void MapRun::flush_errors() {
  if (pending_errors_.empty()) return;
  errors_.message(pending_errors_, error_deadline_);
  pending_errors_.clear();
}

void MapRun::sleep_until_work(bool want_input) {
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

}  // namespace procpool::tool
