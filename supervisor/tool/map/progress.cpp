// MapRun's progress line (--progress) and end-of-run summary (--stats).

#include "map/map_run.hpp"

#include <algorithm>  // std::min
#include <cstdio>     // std::snprintf
#include <mutex>      // std::lock_guard

#include "common/text_format.hpp"

namespace procpool::tool {

void MapRun::show_progress(bool final) {
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
    fraction = std::min(1.0, static_cast<double>(bytes_done_) / static_cast<double>(total_bytes_));
  }
  if (fraction >= 0 && !final && !interrupted_) {  // interrupted: no end to estimate
    char percent[16];
    std::snprintf(percent, sizeof percent, "%.0f%%", fraction * 100);
    line += std::string(", ") + percent;
    if (fraction > 0) line += ", ETA " + clock_time(elapsed * (1 - fraction) / fraction);
  }
  if (final) line += " in " + clock_time(elapsed);
  if (!final) {
    std::lock_guard lock(task_progress_mutex_);
    if (!task_progress_.empty()) {
      line += ", line " + std::to_string(task_progress_line_ + 1) + ": " + task_progress_;
    }
  }
  line += errors_.tty() ? "\033[K" : "   ";
  if (final) line += "\n";
  errors_.progress(line, final);
}

void MapRun::note_task_progress(std::size_t slot_index, const TaskProgress& progress) {
  // A worker's bytes go to a terminal: only printable ASCII, and short enough for one line.
  constexpr std::size_t kShown = 40;
  std::string shown;
  for (const char c : progress.data.substr(0, kShown)) {
    shown += (c >= 0x20 && c < 0x7f) ? c : '?';
  }
  if (progress.data.size() > kShown) shown += "...";
  std::lock_guard lock(task_progress_mutex_);
  task_progress_line_ = slots_[slot_index].line;  // in flight: the main thread leaves it be
  task_progress_.swap(shown);
  has_task_progress_.store(!task_progress_.empty(), std::memory_order_relaxed);
}

void MapRun::forget_task_progress(std::uint64_t line) noexcept {
  std::lock_guard lock(task_progress_mutex_);
  if (task_progress_line_ != line) return;
  task_progress_.clear();
  has_task_progress_.store(false, std::memory_order_relaxed);
}

void MapRun::print_stats() {
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

}  // namespace procpool::tool
