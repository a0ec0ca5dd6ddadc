#include "map_command.hpp"

#include <fcntl.h>        // fcntl, F_DUPFD_CLOEXEC
#include <limits.h>       // PIPE_BUF
#include <poll.h>         // poll
#include <sched.h>        // sched_getaffinity
#include <signal.h>       // signal, SIGPIPE, SIGKILL
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
#include <thread>     // the pool's stopper and starter threads
#include <vector>     // slots, batches

#include <boost/program_options.hpp>  // option parsing

#include "error_stream.hpp"
#include "interrupt_signals.hpp"
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
// A stop at once (second signal): how long the pool may take to reap the workers it killed,
// and how long standard output may take to accept the results that are in.
constexpr std::chrono::seconds kForcedStopBound{2};
constexpr std::chrono::seconds kForcedFlushBound{1};
constexpr std::size_t kMaxPendingErrors = 64 * 1024;  // failure messages buffered, bytes

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
  --grace DURATION    on SIGINT or SIGTERM, how long running tasks may take to finish before
                      their workers are killed (default: 30s; 0 = kill them at once). Also how
                      long a worker may take to exit at the end of the input
  --unordered         write results as they complete instead of in input order
  --progress          show progress on standard error (the default when it is a terminal)
  --no-progress       do not show progress
  --stats             print a summary on standard error at the end: tasks, failed, retried,
                      restarts, elapsed time, lines/s

A line whose task fails writes NOTHING to standard output (so output lines no longer line up
with input lines); the failure goes to standard error as
  procpool map: line L: KIND: MESSAGE
where L counts input lines from 1 and KIND is HandlerError, WorkerCrashed, Timeout, ...
For WorkerCrashed, MESSAGE says how the worker ended (exit code, or signal and core dump), how
long it had been up, what it was running, and its last standard error lines, indented below.
Results are written as they are: a result containing newlines spans several output lines.
Lines longer than 64 MiB fail with PayloadTooLarge. The workers' own standard output and
standard error go to standard error, a whole line at a time (never into the progress line).

Interruption: on SIGINT (Ctrl-C) or SIGTERM, procpool map reads no more input and starts no
new task; tasks already running get --grace to finish (a worker may also run the few tasks
already handed to it), then the workers are stopped. Every result that completed is written
(in input order unless --unordered), and standard error ends with
  procpool map: interrupted by SIGINT: R results written, F failed, N lines not completed
  procpool map: not completed: lines 7-9, 12, 15-
N counts the lines read whose task did not complete; "15-" means line 15 and every line after
it (not read, or read and not started): run those lines again to finish the job. A second
SIGINT or SIGTERM stops at once: the workers are killed, the results already in are written,
and the rest is reported as not completed. A third one, or a second one while standard output
has been blocked for 100 ms, ends procpool map immediately, writing nothing more.

Exit status: 0 every task succeeded; 1 some task failed, or reading input or writing output
failed; 2 usage error, or the pool could not start (missing or failing worker, unknown handler);
130 interrupted by SIGINT, 143 interrupted by SIGTERM (128 + the signal number, as the shell
reports a command killed by it), whether or not some task failed.

Example:
  seq 1 1000000 | procpool map --workers 2 -- procpool-worker-increment
)";

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
  // Built by appending, never by inserting into the string itself: GCC 12 at -O3 reports a
  // spurious overlap (-Wrestrict) in the in-place insert.
  const std::string digits = std::to_string(value);
  std::string grouped;
  grouped.reserve(digits.size() + digits.size() / 3);
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i != 0 && (digits.size() - i) % 3 == 0) grouped.push_back(',');
    grouped.push_back(digits[i]);
  }
  return grouped;
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

// Every further line of a multi-line message (a crash report with the worker's last stderr
// lines) is indented by this, so that the message reads as one item among the others.
constexpr std::string_view kContinuationIndent = "    ";

// `text` for standard error: trailing newlines dropped, every line after the first indented.
std::string indent_continuation(std::string_view text) {
  while (!text.empty() && text.back() == '\n') text.remove_suffix(1);
  std::string out;
  out.reserve(text.size() + 16);
  for (const char c : text) {
    out += c;
    if (c == '\n') out += kContinuationIndent;
  }
  return out;
}

// 250 ms -> "250 ms", 30000 ms -> "30 s", 1500 ms -> "1.5 s"
std::string duration_text(milliseconds duration) {
  const auto ms = duration.count();
  if (ms < 1000) return std::to_string(ms) + " ms";
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + " s";
  char text[48];
  std::snprintf(text, sizeof text, "%.3f", static_cast<double>(ms) / 1e3);
  std::string out = text;
  while (out.back() == '0') out.pop_back();
  return out + " s";
}

constexpr std::uint64_t kNoLine = ~std::uint64_t{0};

// Sorted 0-based line numbers -> "lines 3-5, 9" (counted from 1). With `open_from` (0-based,
// or kNoLine), "N-" stands for line N and every line after it, merged with a range that ends
// just before.
std::string line_ranges(const std::vector<std::uint64_t>& lines, std::uint64_t open_from) {
  std::string out;
  std::size_t items = 0;
  auto add = [&](std::uint64_t first, std::uint64_t last, bool open) {
    out += items++ == 0 ? "" : ", ";
    out += std::to_string(first + 1);
    if (open) {
      out += "-";
    } else if (last != first) {
      out += "-" + std::to_string(last + 1);
    }
  };
  std::size_t i = 0;
  while (i < lines.size()) {
    const std::uint64_t first = lines[i];
    std::uint64_t last = first;
    while (i + 1 < lines.size() && lines[i + 1] <= last + 1) last = lines[++i];
    ++i;
    if (i == lines.size() && open_from == last + 1) {
      add(first, last, true);
      open_from = kNoLine;
    } else {
      add(first, last, false);
    }
  }
  if (open_from != kNoLine) add(open_from, open_from, true);
  const bool one_line = lines.size() == 1 && out.find('-') == std::string::npos;
  return (one_line ? "line " : "lines ") + out;
}

// ---------------------------------------------------------------------------------------------
// Options

struct MapOptions {
  unsigned workers = 0;
  std::string handler = "main";
  unsigned retries = 0;
  milliseconds timeout{0};
  milliseconds grace{30000};  // SIGINT/SIGTERM: time for running tasks, then workers are killed
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
      ("grace", po::value<std::string>())                //
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
  if (values.count("grace") != 0) {
    const std::string& text = values["grace"].as<std::string>();
    const auto grace = parse_duration(text);
    if (!grace) {
      status = usage_error("invalid --grace '" + text +
                           "': expected a duration such as 500ms, 30s or 1m (a plain number is "
                           "seconds; 0 = kill running tasks at once)");
      return {};
    }
    map.grace = *grace;
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
        write(text.data(), text.size());
        write("\n", 1);
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
      write(text.data(), text.size());
      return;
    }
    std::memcpy(data_.get() + size_, text.data(), text.size());
    size_ += text.size();
  }
  void flush() {
    if (size_ == 0) return;
    const std::size_t size = std::exchange(size_, 0);
    write(data_.get(), size);
  }
  bool empty() const noexcept { return size_ == 0; }

  // For a stop at once: from now on the reader gets until `deadline` to take what is written;
  // what it has not taken by then is dropped, and so is everything after (abandoned()).
  void set_deadline(Clock::time_point deadline) noexcept { deadline_ = deadline; }
  bool abandoned() const noexcept { return abandoned_; }

 private:
  void write(const char* data, std::size_t size) {
    // A reader that stopped reading must not hold up an interrupted run: while this may block,
    // a second SIGINT/SIGTERM ends the process.
    const InterruptSignals::BlockingWrite may_block;
    if (abandoned_ || write_all(fd_, data, size, deadline_)) return;
    if (deadline_ && errno == ETIMEDOUT) {
      abandoned_ = true;
      return;
    }
    on_error_(errno);
  }

  int fd_;
  std::size_t capacity_;
  std::size_t size_ = 0;
  std::unique_ptr<char[]> data_;
  void (*on_error_)(int);
  std::optional<Clock::time_point> deadline_;
  bool abandoned_ = false;
};

// Standard output closed or failing: nothing more can be delivered. Exit at once; the workers
// die with us (PR_SET_PDEATHSIG) and their segments are memfds, so nothing is left behind.
[[noreturn]] void output_failed(int error) {
  write_stderr("procpool map: cannot write standard output: " + errno_text(error) + "\n");
  std::_Exit(kExitFailed);
}

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

  // One read(2), called once poll(2) said the input is readable, so it does not block: some
  // input, end of input, nothing (a spurious wake-up), or an error (false, errno set). Lines
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
      // An inherited O_NONBLOCK stdin that polled readable and has nothing after all: the main
      // loop polls again.
      if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
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
        out_(output_fd, kOutputBuffer, &output_failed),
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
    if (options_.progress) show_progress(true);
    if (pool_failed_) {
      say("procpool map: stopped (" + group_digits(not_processed_) +
          (not_processed_ == 1 ? " line" : " lines") +
          " not processed; the rest of the input was not read): " +
          indent_continuation(pool_failure_) + "\n");
    }
    if (interrupted_) report_interruption();
    if (options_.stats) print_stats();
    const bool all_ok = failed_ == 0 && not_processed_ == 0 && !input_error_;
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
    std::sort(not_completed_.begin(), not_completed_.end());
    const std::uint64_t missing = not_completed_.size();
    std::string text = "procpool map: interrupted by " + signal_name(signal_);
    if (forced_.load(std::memory_order_relaxed)) text += ", stopped at once";
    text += ": " + group_digits(ok_) + (ok_ == 1 ? " result" : " results") + " written, " +
            group_digits(failed_) + " failed, " + group_digits(missing) +
            (missing == 1 ? " line" : " lines") + " not completed\n";
    // The first line not submitted, if the input goes on.
    const std::uint64_t rest = input_ended_ ? kNoLine : next_line_;
    if (missing != 0 || rest != kNoLine) {
      text += "procpool map: not completed: " + line_ranges(not_completed_, rest) + "\n";
    }
    if (out_.abandoned()) {
      text += "procpool map: standard output did not take the results within " +
              duration_text(std::chrono::duration_cast<milliseconds>(kForcedFlushBound)) +
              ": some of those written above are missing from it\n";
    }
    say(text);
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
        out_.append_line(slot.text);
        ++ok_;
        break;
      case kFailed:
        ++failed_;
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
    if (slot.text.size() > kSmallResult) {
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
  std::uint64_t next_line_ = 0;   // lines submitted (the next line's 0-based number)
  std::uint64_t next_write_ = 0;  // ordered: the next line to write
  std::uint64_t written_ = 0;     // results written or reported
  std::uint64_t ok_ = 0;          // results written
  std::uint64_t in_flight_ = 0;   // submitted, not yet written
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

std::string_view map_help() { return kHelp; }

int run_map_command(std::span<char* const> args) {
  int status = kExitOk;
  const std::optional<MapOptions> options = parse_options(args, status);
  if (!options) return status;

  // Workers inherit our stdout (PoolOptions has no way to redirect it): keep the real one for
  // results under a private fd, and likewise the real stderr. File descriptors 1 (the workers'
  // stdout) and 2 (where the pool copies the workers' stderr) then go to a relay that writes
  // their lines to the real stderr, never into the progress line; so a worker that prints
  // cannot corrupt the output either.
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
  // A closed pipe on stdout becomes EPIPE from write(2), reported by output_failed(). (The
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
