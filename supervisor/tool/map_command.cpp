#include "map_command.hpp"

#include <fcntl.h>        // fcntl, F_DUPFD_CLOEXEC
#include <poll.h>         // poll
#include <sched.h>        // sched_getaffinity
#include <signal.h>       // signal, SIGPIPE
#include <sys/eventfd.h>  // eventfd: completions wake the main thread
#include <sys/stat.h>     // fstat: input size for the ETA
#include <unistd.h>       // read, write, dup2, isatty, lseek

#include <algorithm>  // std::find_if, std::min
#include <atomic>     // slot states, the sleep flag
#include <cerrno>     // errno
#include <charconv>   // std::from_chars
#include <chrono>     // durations, the progress clock
#include <cmath>      // std::ceil
#include <cstdint>    // std::uint64_t
#include <cstdio>     // std::snprintf
#include <cstdlib>    // std::_Exit
#include <cstring>    // std::memchr, std::memmove, std::strcmp, std::strerror
#include <memory>     // std::unique_ptr
#include <optional>   // parse results, the pool
#include <string>     // messages, results
#include <vector>     // slots, batches

#include <boost/program_options.hpp>  // option parsing

#include "procpool/pool.hpp"

namespace procpool::tool {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// ---------------------------------------------------------------------------------------------
// Tuning, measured with WORKLOADS.md M1 on 2 cores: batches of 256 to 1024 lines and pipeline
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
constexpr std::size_t kSmallResult = 64;     // results up to this size are not counted above
constexpr std::size_t kKeepCapacity = 4096;  // a slot frees a larger result buffer once written
constexpr std::size_t kReadBuffer = 1 << 20;
constexpr std::size_t kOutputBuffer = 1 << 20;
constexpr milliseconds kProgressInterval{200};
constexpr int kShortWaitMs = 2;    // bounds output latency while waiting for a batch of results
constexpr int kIdleWaitMs = 1000;  // safety net: every wait is bounded

constexpr std::string_view kHelp =
    R"(Usage: procpool map [OPTIONS] -- WORKER [ARGS...]

Runs handler NAME of the procpool worker program WORKER (started with ARGS) on every line of
standard input, in a pool of worker processes. Each line, without its newline, is one task's
payload; each result is written to standard output followed by a newline, in input order unless
--unordered. A last line without a newline is processed too.

Options:
  -h, --help          show this help and exit
  --workers N         worker processes (default: the number of CPUs)
  --handler NAME      the handler to run (default: main)
  --retries N         run a task again, up to N times, when its worker dies under it or it
                      times out (default: 0; a handler that throws is not retried)
  --timeout DURATION  fail a task that runs longer than DURATION: 500ms, 2s, 1m, or a plain
                      number of seconds (default: 0 = no limit). Each worker then runs one task
                      at a time, so that time spent waiting is not counted
  --unordered         write results as they complete instead of in input order
  --progress          show progress on standard error (the default when it is a terminal)
  --no-progress       do not show progress
  --stats             print a summary on standard error at the end: tasks, failed, retried,
                      restarts, elapsed time, lines/s

A line whose task fails writes NOTHING to standard output (so output lines no longer line up
with input lines); the failure goes to standard error as
  procpool map: line L: KIND: MESSAGE
where L counts input lines from 1 and KIND is HandlerError, WorkerCrashed, Timeout, ...
Results are written as they are: a result containing newlines spans several output lines.
Lines longer than 64 MiB fail with PayloadTooLarge. The workers' own standard output and
standard error go to standard error.

Exit status: 0 every task succeeded; 1 some task failed, or reading input or writing output
failed; 2 usage error, or the pool could not start (missing or failing worker, unknown handler).

Example:
  seq 1 1000000 | procpool map --workers 2 -- procpool-worker-increment
)";

// ---------------------------------------------------------------------------------------------
// Small helpers

// write(2) all of it: retries EINTR, waits for room on a non-blocking fd. False with errno set.
bool write_all(int fd, const char* data, std::size_t size) {
  while (size > 0) {
    const ssize_t n = ::write(fd, data, size);
    if (n > 0) {
      data += n;
      size -= static_cast<std::size_t>(n);
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      pollfd writable{fd, POLLOUT, 0};
      ::poll(&writable, 1, -1);
    } else {
      if (n == 0) errno = EIO;
      return false;
    }
  }
  return true;
}

void write_stderr(std::string_view text) {
  (void)write_all(STDERR_FILENO, text.data(), text.size());
}

int usage_error(const std::string& message) {
  write_stderr("procpool map: " + message + "\nTry 'procpool map --help' for more information.\n");
  return kExitUsage;
}

std::optional<unsigned> parse_unsigned(std::string_view text, unsigned min, unsigned max) {
  unsigned value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || error != std::errc() || end != text.data() + text.size()) return {};
  if (value < min || value > max) return {};
  return value;
}

// "500ms", "2s", "1.5m", "1h", or a plain number of seconds; 0 = none. A positive duration
// below 1 ms rounds up to 1 ms (0 would mean no limit).
std::optional<milliseconds> parse_duration(std::string_view text) {
  const std::size_t digits = text.find_first_not_of("0123456789.");
  const std::string_view number = text.substr(0, digits);
  const std::string_view unit = digits == std::string_view::npos ? "" : text.substr(digits);
  if (number.empty() || number.find_first_of("0123456789") == std::string_view::npos) return {};
  double value = 0;
  const auto [end, error] = std::from_chars(number.data(), number.data() + number.size(), value);
  if (error != std::errc() || end != number.data() + number.size()) return {};
  double per_unit_ms = 0;
  if (unit.empty() || unit == "s") {
    per_unit_ms = 1e3;
  } else if (unit == "ms") {
    per_unit_ms = 1;
  } else if (unit == "m") {
    per_unit_ms = 60e3;
  } else if (unit == "h") {
    per_unit_ms = 3600e3;
  } else {
    return {};
  }
  const double ms = std::ceil(value * per_unit_ms);
  if (!(ms >= 0) || ms > 1e10) return {};  // about 115 days
  return milliseconds(static_cast<milliseconds::rep>(ms));
}

unsigned cpu_count() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) {
    return static_cast<unsigned>(CPU_COUNT(&set));
  }
  const long online = ::sysconf(_SC_NPROCESSORS_ONLN);
  return online > 0 ? static_cast<unsigned>(online) : 1;
}

std::string errno_text(int error) { return std::strerror(error); }

// 1234567 -> "1,234,567"
std::string group_digits(std::uint64_t value) {
  std::string digits = std::to_string(value);
  for (std::size_t i = digits.size(); i > 3; i -= 3) digits.insert(i - 3, ",");
  return digits;
}

// 1234567.0 -> "1.23M"
std::string short_rate(double value) {
  char text[32];
  if (value >= 1e6) {
    std::snprintf(text, sizeof text, "%.2fM", value / 1e6);
  } else if (value >= 1e3) {
    std::snprintf(text, sizeof text, "%.1fk", value / 1e3);
  } else {
    std::snprintf(text, sizeof text, "%.0f", value);
  }
  return text;
}

// 3725 s -> "1:02:05", 65 s -> "1:05"
std::string clock_time(double seconds) {
  const auto total = static_cast<std::uint64_t>(seconds + 0.5);
  char text[48];
  if (total >= 3600) {
    std::snprintf(text, sizeof text, "%llu:%02llu:%02llu",
                  static_cast<unsigned long long>(total / 3600),
                  static_cast<unsigned long long>(total / 60 % 60),
                  static_cast<unsigned long long>(total % 60));
  } else {
    std::snprintf(text, sizeof text, "%llu:%02llu", static_cast<unsigned long long>(total / 60),
                  static_cast<unsigned long long>(total % 60));
  }
  return text;
}

// ---------------------------------------------------------------------------------------------
// Options

struct MapOptions {
  unsigned workers = 0;
  std::string handler = "main";
  unsigned retries = 0;
  milliseconds timeout{0};
  bool unordered = false;
  bool progress = false;
  bool stats = false;
  std::string worker;
  std::vector<std::string> worker_args;
};

// The options, or nothing with `status` set (help shown, or a usage error reported).
std::optional<MapOptions> parse_options(std::span<char* const> args, int& status) {
  namespace po = boost::program_options;
  const auto dashes = std::find_if(args.begin(), args.end(),
                                   [](const char* arg) { return std::strcmp(arg, "--") == 0; });
  const std::vector<std::string> ours(args.begin(), dashes);

  po::options_description options;
  options.add_options()                                  //
      ("help,h", "")                                     //
      ("workers", po::value<std::string>())              //
      ("handler", po::value<std::string>())              //
      ("retries", po::value<std::string>())              //
      ("timeout", po::value<std::string>())              //
      ("unordered", po::bool_switch())                   //
      ("progress", po::bool_switch())                    //
      ("no-progress", po::bool_switch())                 //
      ("stats", po::bool_switch())                       //
      ("stray", po::value<std::vector<std::string>>());  // arguments that are no option
  po::positional_options_description positional;
  positional.add("stray", -1);
  po::variables_map values;
  try {
    // No abbreviations: `--work 2` must not silently mean --workers.
    const int style = po::command_line_style::unix_style & ~po::command_line_style::allow_guessing;
    po::store(
        po::command_line_parser(ours).options(options).positional(positional).style(style).run(),
        values);
    po::notify(values);
  } catch (const po::error& e) {
    status = usage_error(e.what());
    return {};
  }

  if (values.count("help") != 0) {
    write_all(STDOUT_FILENO, kHelp.data(), kHelp.size());
    status = kExitOk;
    return {};
  }
  if (values.count("stray") != 0) {
    const std::string& first = values["stray"].as<std::vector<std::string>>().front();
    status =
        usage_error(dashes == args.end() ? "missing '--' before the worker command '" + first + "'"
                                         : "unexpected argument '" + first + "' before '--'");
    return {};
  }
  if (dashes == args.end()) {
    status = usage_error("missing '-- WORKER': give the worker program after '--'");
    return {};
  }
  if (dashes + 1 == args.end() || **(dashes + 1) == '\0') {
    status = usage_error("missing WORKER after '--'");
    return {};
  }

  MapOptions map;
  map.worker = *(dashes + 1);
  map.worker_args.assign(dashes + 2, args.end());
  map.workers = cpu_count();
  if (values.count("workers") != 0) {
    const std::string& text = values["workers"].as<std::string>();
    const auto workers = parse_unsigned(text, 1, 1024);
    if (!workers) {
      status = usage_error("invalid --workers '" + text + "': expected a whole number, 1 to 1024");
      return {};
    }
    map.workers = *workers;
  }
  if (values.count("retries") != 0) {
    const std::string& text = values["retries"].as<std::string>();
    const auto retries = parse_unsigned(text, 0, 10000);
    if (!retries) {
      status = usage_error("invalid --retries '" + text + "': expected a whole number, 0 to 10000");
      return {};
    }
    map.retries = *retries;
  }
  if (values.count("timeout") != 0) {
    const std::string& text = values["timeout"].as<std::string>();
    const auto timeout = parse_duration(text);
    if (!timeout) {
      status = usage_error("invalid --timeout '" + text +
                           "': expected a duration such as 500ms, 2s or 1m (a plain number is "
                           "seconds)");
      return {};
    }
    map.timeout = *timeout;
  }
  if (values.count("handler") != 0) {
    map.handler = values["handler"].as<std::string>();
    if (map.handler.empty()) {
      status = usage_error("invalid --handler '': the handler name is empty");
      return {};
    }
  }
  const bool progress = values["progress"].as<bool>();
  const bool no_progress = values["no-progress"].as<bool>();
  if (progress && no_progress) {
    status = usage_error("--progress and --no-progress contradict each other");
    return {};
  }
  map.progress = progress || (!no_progress && ::isatty(STDERR_FILENO) == 1);
  map.unordered = values["unordered"].as<bool>();
  map.stats = values["stats"].as<bool>();
  return map;
}

// ---------------------------------------------------------------------------------------------
// Output: one large buffer, written with write(2).

class OutputBuffer {
 public:
  // `on_error(errno)` is called when a write fails (the buffer is dropped).
  OutputBuffer(int fd, std::size_t capacity, void (*on_error)(int))
      : fd_(fd), capacity_(capacity), data_(new char[capacity]), on_error_(on_error) {}

  void append_line(std::string_view text) {
    if (text.size() + 1 > capacity_ - size_) {
      flush();
      if (text.size() + 1 > capacity_) {  // larger than the buffer: straight through
        if (!write_all(fd_, text.data(), text.size()) || !write_all(fd_, "\n", 1)) {
          on_error_(errno);
        }
        return;
      }
    }
    std::memcpy(data_.get() + size_, text.data(), text.size());
    size_ += text.size();
    data_[size_++] = '\n';
  }
  void append(std::string_view text) {
    if (text.size() > capacity_ - size_) flush();
    if (text.size() > capacity_) {
      if (!write_all(fd_, text.data(), text.size())) on_error_(errno);
      return;
    }
    std::memcpy(data_.get() + size_, text.data(), text.size());
    size_ += text.size();
  }
  void flush() {
    if (size_ == 0) return;
    const std::size_t size = std::exchange(size_, 0);
    if (!write_all(fd_, data_.get(), size)) on_error_(errno);
  }
  bool empty() const noexcept { return size_ == 0; }

 private:
  int fd_;
  std::size_t capacity_;
  std::size_t size_ = 0;
  std::unique_ptr<char[]> data_;
  void (*on_error_)(int);
};

// Standard output closed or failing: nothing more can be delivered. Exit at once; the workers
// die with us (PR_SET_PDEATHSIG) and their segments are memfds, so nothing is left behind.
[[noreturn]] void output_failed(int error) {
  write_stderr("procpool map: cannot write standard output: " + errno_text(error) + "\n");
  std::_Exit(kExitFailed);
}

void ignore_error(int) {}

// ---------------------------------------------------------------------------------------------
// Input: large read(2)s into one buffer, split on '\n'. The buffer grows only to hold one long
// line, up to max_line + 1 bytes; a longer line is skipped (and reported) without buffering it.

class LineReader {
 public:
  enum class Next : std::uint8_t {
    kLine,       // `line` is the next line, valid until the next fill()
    kTooLong,    // the next line has more than max_line bytes; it is being skipped
    kNeedInput,  // no complete line buffered: fill()
    kEnd,        // end of input
  };

  LineReader(int fd, std::size_t max_line)
      : fd_(fd), max_line_(max_line), buffer_(std::min(kReadBuffer, max_line + 1)) {}

  Next next(std::string_view& line) {
    char* const data = buffer_.data();
    if (skipping_) {
      const auto* newline =
          static_cast<const char*>(std::memchr(data + begin_, '\n', end_ - begin_));
      if (newline == nullptr) {
        begin_ = scanned_ = end_;
        return eof_ ? Next::kEnd : Next::kNeedInput;
      }
      begin_ = scanned_ = static_cast<std::size_t>(newline - data) + 1;
      skipping_ = false;
    }
    const auto* newline =
        static_cast<const char*>(std::memchr(data + scanned_, '\n', end_ - scanned_));
    if (newline != nullptr) {
      const auto at = static_cast<std::size_t>(newline - data);
      line = std::string_view(data + begin_, at - begin_);
      begin_ = scanned_ = at + 1;
      return Next::kLine;
    }
    scanned_ = end_;  // [begin_, end_) holds no newline: do not scan it again
    if (end_ - begin_ > max_line_) {
      skipping_ = true;
      begin_ = scanned_ = end_;
      return Next::kTooLong;
    }
    if (!eof_) return Next::kNeedInput;
    if (begin_ == end_) return Next::kEnd;
    line = std::string_view(data + begin_, end_ - begin_);  // the last line, without a newline
    begin_ = scanned_ = end_;
    return Next::kLine;
  }

  // One read(2): blocks until some input, end of input or an error (false, errno set). Lines
  // returned earlier are invalid afterwards.
  bool fill() {
    if (begin_ == end_) {
      begin_ = scanned_ = end_ = 0;
    } else if (end_ == buffer_.size() && begin_ > 0) {
      std::memmove(buffer_.data(), buffer_.data() + begin_, end_ - begin_);
      end_ -= begin_;
      scanned_ -= begin_;
      begin_ = 0;
    }
    if (end_ == buffer_.size()) {  // one line fills the buffer: grow (next() bounds this)
      buffer_.resize(std::min(buffer_.size() * 2, max_line_ + 1));
    }
    for (;;) {
      const ssize_t n = ::read(fd_, buffer_.data() + end_, buffer_.size() - end_);
      if (n > 0) {
        end_ += static_cast<std::size_t>(n);
        return true;
      }
      if (n == 0) {
        eof_ = true;
        return true;
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {  // an inherited O_NONBLOCK stdin
        pollfd readable{fd_, POLLIN, 0};
        ::poll(&readable, 1, -1);
        continue;
      }
      return false;
    }
  }

 private:
  int fd_;
  std::size_t max_line_;
  std::vector<char> buffer_;
  std::size_t begin_ = 0;    // first unconsumed byte
  std::size_t scanned_ = 0;  // [begin_, scanned_) is known to hold no newline
  std::size_t end_ = 0;      // end of the data read
  bool eof_ = false;
  bool skipping_ = false;  // inside a line longer than max_line_
};

// ---------------------------------------------------------------------------------------------
// The run: the main thread reads, submits and writes; completions (on pool threads, or on the
// main thread inside submit_batch) fill result slots.

class MapRun {
 public:
  MapRun(const MapOptions& options, Pool& pool, int input_fd, int output_fd, std::uint64_t max_line)
      : options_(options),
        pool_(pool),
        input_fd_(input_fd),
        slots_(kWindow),
        reader_(input_fd, max_line),
        out_(output_fd, kOutputBuffer, &output_failed),
        err_(STDERR_FILENO, 64 * 1024, &ignore_error),
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
    tty_ = ::isatty(STDERR_FILENO) == 1;
  }
  ~MapRun() { ::close(wake_fd_); }
  MapRun(const MapRun&) = delete;
  MapRun& operator=(const MapRun&) = delete;

  // Runs to the end of input; returns the exit status.
  int run() {
    start_ = Clock::now();
    next_progress_ = start_ + kProgressInterval;
    for (;;) {
      bool progressed = drain_results();
      bool want_input = false;
      if (!input_done_ && has_room()) {
        switch (submit_next_batch()) {
          case Gathered::kSubmitted:
            progressed = true;
            break;
          case Gathered::kNeedInput:
            // Never block in read(2): results written meanwhile would wait in out_.
            if (input_ready()) {
              if (!reader_.fill()) {
                err_.append("procpool map: cannot read standard input: " + errno_text(errno) +
                            "\n");
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
            break;
        }
      }
      if (input_done_ && in_flight_ == 0) break;
      if (options_.progress && Clock::now() >= next_progress_) show_progress(false);
      if (!progressed) {
        err_.flush();
        out_.flush();
        sleep_until_work(want_input);
      }
    }
    elapsed_s_ = std::chrono::duration<double>(Clock::now() - start_).count();
    err_.flush();
    out_.flush();
    if (options_.progress) show_progress(true);
    if (pool_failed_) {
      write_stderr("procpool map: stopped: " + pool_failure_ + " (" + group_digits(not_processed_) +
                   (not_processed_ == 1 ? " line" : " lines") +
                   " not processed; the rest of the input was not read)\n");
    }
    if (options_.stats) print_stats();
    const bool all_ok = failed_ == 0 && not_processed_ == 0 && !input_error_;
    return all_ok ? kExitOk : kExitFailed;
  }

 private:
  enum SlotState : std::uint8_t { kEmpty, kOk, kFailed, kPoolFailed };
  enum class Gathered : std::uint8_t { kSubmitted, kNeedInput, kEnd };

  // One line in flight. `state` is the hand-over: the completion writes kind and text, then
  // stores state (release); the main thread loads state (acquire), reads them, and stores kEmpty
  // before it submits another line into this slot (the pool's lock orders that store before the
  // next completion).
  struct Slot {
    std::atomic<std::uint8_t> state{kEmpty};
    TaskError::Kind kind{};
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
      // After the pool failed (a worker that keeps dying at start), every queued and every new
      // task fails with this; reported once, not per line.
      const bool pool_failed =
          error.kind() == TaskError::Kind::ShuttingDown || slot.text.starts_with("pool failed: ");
      state = pool_failed ? kPoolFailed : kFailed;
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

  // --- the main thread ---

  bool has_room() const {
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
    while (views_.size() < kBatch && in_flight_bytes_ + bytes < kMaxInFlightBytes) {
      std::string_view line;
      const LineReader::Next next = reader_.next(line);
      if (next == LineReader::Next::kLine) {
        Slot& slot = slots_[(base + views_.size()) & kWindowMask];
        slot.line = next_line_ + views_.size();
        slot.input_bytes = static_cast<std::uint32_t>(line.size() + 1);  // <= max_payload + 1
        bytes += line.size() + 1;
        views_.push_back(line);
        continue;
      }
      if (next == LineReader::Next::kTooLong) {
        too_long = true;
        Slot& slot = slots_[(base + views_.size()) & kWindowMask];
        slot.line = next_line_ + views_.size();
        slot.input_bytes = 0;
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
        out_.append_line(slot.text);
        break;
      case kFailed: {
        ++failed_;
        std::string message = tty_ && options_.progress ? "\r\033[K" : "";
        message += "procpool map: line " + std::to_string(slot.line + 1) + ": ";
        message += to_string(slot.kind);
        message += ": " + slot.text + "\n";
        err_.append(message);
        break;
      }
      default:  // kPoolFailed
        if (!pool_failed_) pool_failure_ = slot.text;
        pool_failed_ = true;
        input_done_ = true;  // read no more: nothing more can run
        ++not_processed_;
        break;
    }
    if (slot.text.size() > kSmallResult) {
      pending_result_bytes_.fetch_sub(slot.text.size(), std::memory_order_relaxed);
    }
    if (slot.text.capacity() > kKeepCapacity) std::string().swap(slot.text);
    slot.state.store(kEmpty, std::memory_order_relaxed);
    in_flight_bytes_ -= slot.input_bytes;
    bytes_done_ += slot.input_bytes;
    --in_flight_;
    ++written_;
  }

  // Sleeps until results are ready, input is readable (if wanted), or a bounded time passed.
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
    pollfd fds[2] = {{wake_fd_, POLLIN, 0}, {input_fd_, POLLIN, 0}};
    const int ready = ::poll(fds, want_input ? 2 : 1, timeout_ms);
    if (armed) sleeping_.store(false, std::memory_order_relaxed);
    if (ready > 0 && (fds[0].revents & POLLIN) != 0) {
      eventfd_t value;
      (void)::eventfd_read(wake_fd_, &value);
    }
  }

  void show_progress(bool final) {
    const auto now = Clock::now();
    next_progress_ = now + kProgressInterval;
    const double elapsed = std::chrono::duration<double>(now - start_).count();
    const double rate = elapsed > 0 ? static_cast<double>(written_) / elapsed : 0;
    std::string line = "\rprocpool map: " + group_digits(written_) + " lines";
    if (failed_ != 0) line += ", " + group_digits(failed_) + " failed";
    line += ", " + short_rate(rate) + " lines/s";
    double fraction = -1;
    if (input_done_ && next_line_ != 0) {
      fraction = static_cast<double>(written_) / static_cast<double>(next_line_);
    } else if (total_bytes_ != 0) {
      fraction =
          std::min(1.0, static_cast<double>(bytes_done_) / static_cast<double>(total_bytes_));
    }
    if (fraction >= 0 && !final) {
      char percent[16];
      std::snprintf(percent, sizeof percent, "%.0f%%", fraction * 100);
      line += std::string(", ") + percent;
      if (fraction > 0) line += ", ETA " + clock_time(elapsed * (1 - fraction) / fraction);
    }
    if (final) line += " in " + clock_time(elapsed);
    line += tty_ ? "\033[K" : "   ";
    if (final) line += "\n";
    write_stderr(line);
  }

  void print_stats() {
    const PoolMetrics metrics = pool_.metrics();
    const double rate = elapsed_s_ > 0 ? static_cast<double>(written_) / elapsed_s_ : 0;
    char text[512];
    std::snprintf(text, sizeof text,
                  "procpool map: %llu tasks, %llu failed, %llu retried, %llu restarts, "
                  "%.3f s elapsed, %.0f lines/s\n",
                  static_cast<unsigned long long>(written_),
                  static_cast<unsigned long long>(failed_ + not_processed_),
                  static_cast<unsigned long long>(metrics.retried),
                  static_cast<unsigned long long>(metrics.restarts), elapsed_s_, rate);
    write_stderr(text);
  }

  const MapOptions& options_;
  Pool& pool_;
  const int input_fd_;
  TaskOptions task_options_;
  std::vector<Slot> slots_;
  LineReader reader_;
  OutputBuffer out_;
  OutputBuffer err_;  // failure messages, written with the output
  const std::uint64_t max_line_;
  const TaskError too_long_error_{
      TaskError::Kind::PayloadTooLarge,
      "line longer than max_payload (" + std::to_string(max_line_) + " bytes)"};
  std::vector<std::string_view> views_;

  // Main thread only.
  std::uint64_t next_line_ = 0;   // lines submitted (the next line's 0-based number)
  std::uint64_t next_write_ = 0;  // ordered: the next line to write
  std::uint64_t written_ = 0;     // results written or reported
  std::uint64_t in_flight_ = 0;   // submitted, not yet written
  std::uint64_t in_flight_bytes_ = 0;
  std::uint64_t bytes_done_ = 0;
  std::uint64_t total_bytes_ = 0;  // of the input, if known (a regular file), else 0
  std::uint64_t failed_ = 0, not_processed_ = 0;
  bool input_done_ = false, input_error_ = false;
  bool pool_failed_ = false;
  std::string pool_failure_;
  bool tty_ = false;
  Clock::time_point start_{}, next_progress_{};
  double elapsed_s_ = 0;
  // Unordered mode: the window is handed out in chunks of kBatch slots, one per batch, free
  // again once all their results are written.
  std::vector<std::size_t> free_chunks_;
  std::size_t chunk_left_[kWindow / kBatch] = {};
  std::uint64_t done_head_ = 0;  // next done_ entry to read

  // Shared with completions, each on its own cache line (written by different threads).
  // Unordered mode: completed slot indices + 1 in completion order (0 = not yet), a
  // multi-producer ring that cannot overflow: at most kWindow lines are in flight.
  std::unique_ptr<std::atomic<std::uint32_t>[]> done_;
  alignas(64) std::atomic<std::uint64_t> done_tail_{0};
  alignas(64) std::atomic<std::uint64_t> pending_result_bytes_{0};
  alignas(64) std::atomic<bool> sleeping_{false};  // the main thread is (about to be) in poll
  std::atomic<std::uint64_t> wait_ticket_{0};      // the result it waits for
  int wake_fd_ = -1;
};

}  // namespace

std::string_view map_help() { return kHelp; }

int run_map_command(std::span<char* const> args) {
  int status = kExitOk;
  const std::optional<MapOptions> options = parse_options(args, status);
  if (!options) return status;

  // Workers inherit our stdout (PoolOptions has no way to redirect it): keep the real one for
  // results under a private fd, and give the workers stderr at fd 1 instead, so that a worker
  // that prints cannot corrupt the output.
  const int output_fd = ::fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3);
  if (output_fd < 0 || ::dup2(STDERR_FILENO, STDOUT_FILENO) < 0) {
    write_stderr("procpool map: cannot set up standard output: " + errno_text(errno) + "\n");
    return kExitFailed;
  }
  // A closed pipe on stdout becomes EPIPE from write(2), reported by output_failed(). (The
  // launcher resets every signal disposition in the workers.)
  ::signal(SIGPIPE, SIG_IGN);

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
  std::optional<Pool> pool;
  try {
    pool.emplace(pool_options);
  } catch (const Error& e) {
    std::string_view what = e.what();
    if (what.starts_with("procpool::Pool: ")) what.remove_prefix(16);
    write_stderr("procpool map: " + std::string(what) + "\n");
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
    MapRun run(*options, *pool, STDIN_FILENO, output_fd, pool_options.max_payload);
    status = run.run();
    // Every result is in, but a completion may still be returning on a pool thread: stop the
    // pool (which joins its threads) before `run`, which the completions point to, goes away.
    pool->shutdown();
  } catch (const std::exception& e) {
    write_stderr(std::string("procpool map: ") + e.what() + "\n");
    return kExitFailed;
  }
  return status;
}

}  // namespace procpool::tool
