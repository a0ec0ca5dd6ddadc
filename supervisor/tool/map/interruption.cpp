// MapRun stopping early: after SIGINT/SIGTERM (gracefully, then at once) or a failed standard
// output, and the report of what was written and which lines were not completed.

#include "map/map_run.hpp"

#include <poll.h>         // poll
#include <sys/eventfd.h>  // eventfd_read, eventfd_write

#include <algorithm>  // std::min, std::sort

#include "common/duration.hpp"
#include "common/text_format.hpp"
#include "map/line_ranges.hpp"

namespace procpool::tool {

using std::chrono::milliseconds;

void MapRun::check_signals() {
  const int count = signals_.count();
  if (count == seen_signals_) return;
  seen_signals_ = count;
  if (!interrupted_) begin_interrupt();
  if (count >= 2 && !forced_.load(std::memory_order_relaxed)) stop_at_once();
}

void MapRun::begin_interrupt() {
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

void MapRun::stop_at_once() {
  forced_.store(true, std::memory_order_release);
  forced_at_ = Clock::now();
  say("procpool map: " + signal_name(signal_) +
      " again: stopping at once; the workers are killed\n");
  start_stopping_pool();
  // SIGKILLs every worker and waits for the reaps (milliseconds); the tasks they had fail
  // ShuttingDown, and the stopper's shutdown() returns with it.
  pool_.terminate();
}

void MapRun::start_stopping_pool() {
  if (stopper_.joinable()) return;
  stopper_ = start_thread_without_signals([this] {
    pool_.shutdown();
    pool_stopped_.store(true, std::memory_order_release);
    ::eventfd_write(wake_fd_, 1);
  });
}

bool MapRun::stop_pool() {
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

void MapRun::settle_in_flight() {
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

void MapRun::give_up(Slot& slot) {
  not_completed_.push_back(slot.line);
  slot.in_flight = false;
  in_flight_bytes_ -= slot.input_bytes;
  --in_flight_;
  ++written_;
}

void MapRun::report_interruption() {
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

void MapRun::stop_for_output_failure() {
  output_failed_ = true;
  input_done_ = true;
  say("procpool map: cannot write standard output: " + errno_text(out_.error()) +
      "; stopping: the workers are killed\n");
  forced_.store(true, std::memory_order_release);
  forced_at_ = Clock::now();
  start_stopping_pool();
  pool_.terminate();
}

void MapRun::report_output_failure() {
  say("procpool map: stopped, standard output failed (" + errno_text(out_.error()) +
      "): " + completion_report());
}

std::string MapRun::completion_report() {
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

}  // namespace procpool::tool
