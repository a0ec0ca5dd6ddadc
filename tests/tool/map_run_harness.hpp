#pragma once

// `procpool map`, driven as a user drives it: each test spawns the built binary with its stdin,
// stdout and stderr on pipes, feeds the input while collecting both outputs (poll, never a
// sleep), and waits for the exit through a pidfd, all under one deadline. A run that overstays
// is SIGKILLed and reaped, so a hung binary fails its test instead of hanging the suite. The
// interruption tests send SIGINT/SIGTERM when the run reaches a point they can see (so many
// result lines on stdout, a message on stderr), never after a sleep.
//
// This is the harness the tests of `procpool map` share (map_*_test.cpp, one file per concern).

#include <signal.h>     // SIGINT
#include <sys/types.h>  // pid_t

#include <chrono>      // the deadline
#include <cstdint>     // std::uint64_t
#include <functional>  // RunOptions' hooks
#include <set>         // line numbers
#include <string>      // inputs and outputs
#include <vector>      // argv

#include <gtest/gtest.h>

namespace procpool::map_test {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// The example worker procpool-worker-NAME, as built.
std::string worker(const std::string& name);

struct Result {
  int exit_code = -1;  // the exit status, or -1 if it did not exit normally
  int signal = 0;      // the terminating signal, if any
  bool timed_out = false;
  std::string out, err;
  std::size_t out_bytes = 0;  // all of stdout, also when it is not kept (RunOptions::keep_stdout)
  long max_rss_kb = 0;        // the peak resident set size of procpool (and its reaped workers)
  std::size_t signals_sent = 0;
  // From the last signal sent to the exit seen.
  std::chrono::milliseconds exit_after_signal{-1};
};

// A signal for the test to send once the run got this far: stdout holds at least
// `after_output_lines` lines and stderr contains `after_error_text` (if not empty).
struct SignalStep {
  int signal = SIGINT;
  std::size_t after_output_lines = 0;
  std::string after_error_text;
};

struct RunOptions {
  std::chrono::milliseconds deadline = 60s;
  bool close_stdout = false;  // the reader of stdout is gone before the run starts
  // The reader of stdout goes away once it has read this many lines (0 = never).
  std::size_t close_stdout_after_lines = 0;
  // What procpool gets as its fd 1 instead of the pipe: "closed", "read-only" (/dev/null opened
  // O_RDONLY) or "full" (/dev/full: every write fails ENOSPC).
  std::string stdout_is;
  bool keep_stdout = true;  // false: stdout is counted (out_bytes), not kept in `out`
  // If set, stdin stays open after the input is written until this shows up on stdout.
  std::string hold_stdin_until_output;
  // Stdin stays open until the run exits: the input never ends.
  bool keep_stdin_open = false;
  std::vector<SignalStep> signals;  // sent in order, each once its condition holds
  // Once the input given is written, the next chunk to write; an empty chunk ends the input.
  std::function<std::string()> more_input;
  // Called with procpool's pid once it runs, and before it is reaped (then the pid may be
  // reused): what a test does to the process in between.
  std::function<void(pid_t)> on_started;
  std::function<void()> before_reap;
  // "NAME=VALUE" entries added to procpool's environment (which its workers inherit), each
  // replacing an inherited variable of its name.
  std::vector<std::string> env;
};

// This process's environment with `entries` ("NAME=VALUE") added, each replacing an inherited
// variable of its name.
std::vector<std::string> environment_with(const std::vector<std::string>& entries);

// Runs `procpool ARGS...` with `input` on stdin; returns when it has exited and both of its
// outputs are closed, or at the deadline (then it is killed).
Result run_procpool(const std::vector<std::string>& args, const std::string& input = "",
                    RunOptions options = {});
// The same for any program: argv[0] is its path.
Result run_program(std::vector<std::string> argv, const std::string& input = "",
                   RunOptions options = {});

// "from\n...to\n"
std::string numbers(std::uint64_t from, std::uint64_t to);
// The lines of `text`, sorted; and in order (a last line without a newline included).
std::vector<std::string> sorted_lines(const std::string& text);
std::vector<std::string> lines_of(const std::string& text);
// `times` lines of `line`.
std::string repeat_line(const std::string& line, std::size_t times);

// What an interrupted run reported on stderr as not completed:
//   procpool map: not completed: lines 3-5, 9, 12-
struct NotCompleted {
  bool reported = false;
  std::set<std::uint64_t> lines;  // from the closed ranges, counted from 1
  std::uint64_t rest_from = 0;    // N of a final "N-" (line N and after), or 0
};

NotCompleted parse_not_completed(const std::string& err);

// Every message of procpool map's own on stderr starts a line, even with a progress line (which
// ends with spaces, not a newline, when stderr is not a terminal) in between.
void expect_messages_start_lines(const std::string& err, const std::string& message);

// The crashy worker's "sleep" handler sleeps the line's milliseconds and answers "slept". The
// runs that use it feed two 1 ms lines first: once both results are out, each of the two workers
// has started the line after (they were handed two each), so a signal then finds them running.
std::vector<std::string> sleep_run(const std::vector<std::string>& options);

class MapTest : public ::testing::Test {
 protected:
  // Writing to a procpool that already exited must fail with EPIPE, not kill the test.
  static void SetUpTestSuite() { ::signal(SIGPIPE, SIG_IGN); }
};

#define EXPECT_EXIT_CODE(run, code)                                                \
  do {                                                                             \
    EXPECT_FALSE((run).timed_out) << "stderr: " << (run).err;                      \
    EXPECT_EQ((run).exit_code, (code))                                             \
        << "signal " << (run).signal << ", stderr: " << (run).err.substr(0, 4000); \
  } while (0)

}  // namespace procpool::map_test
