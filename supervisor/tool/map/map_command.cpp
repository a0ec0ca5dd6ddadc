#include "map/map_command.hpp"

#include <fcntl.h>        // fcntl, F_DUPFD_CLOEXEC
#include <poll.h>         // poll
#include <signal.h>       // signal, SIGPIPE
#include <sys/eventfd.h>  // eventfd: the pool's start wakes the main thread
#include <unistd.h>       // isatty, close

#include <algorithm>  // std::find
#include <cerrno>     // errno
#include <chrono>     // durations
#include <cstdlib>    // std::_Exit
#include <optional>   // the pool
#include <string>     // messages
#include <thread>     // the pool's starter thread
#include <vector>     // handlers

#include "common/error_stream.hpp"
#include "common/interrupt_signals.hpp"
#include "common/text_format.hpp"
#include "map/map_options.hpp"
#include "map/map_run.hpp"
#include "map/map_tuning.hpp"
#include "procpool/pool.hpp"

namespace procpool::tool {
namespace {

using std::chrono::milliseconds;

// Standard error once map has set it up (the workers' output goes through it too), else null.
ErrorStream* g_errors = nullptr;

void write_stderr(std::string_view text) {
  if (g_errors != nullptr) {
    g_errors->message(text);
  } else {
    (void)write_all(STDERR_FILENO, text.data(), text.size());
  }
}

}  // namespace

int run_map_command(std::span<char* const> args, const CommandContext& context) {
  int status = kExitOk;
  const std::optional<MapOptions> options = parse_map_options(args, status);
  if (!options) return status;

  // Results go to a private copy of our stdout, and messages to one of our stderr, so that
  // nothing else in the process writes between them (the workers' own output reaches stderr
  // through the pool's line sinks, below).
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
  // What the workers print, on either stream, goes to our stderr as whole lines, never into
  // the results on stdout nor inside the progress line.
  const auto relay = [&errors](std::string_view, std::string_view line) {
    errors.relay_line(line);
  };
  pool_options.worker_stdout = OutputSink{};
  pool_options.worker_stdout.on_line = relay;
  pool_options.worker_stderr = OutputSink{};
  pool_options.worker_stderr.on_line = relay;

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
  pool.reset();  // every worker line is in (or dropped) once its thread is gone
  if (const std::uint64_t dropped = errors.dropped_lines(); dropped != 0) {
    errors.message("procpool map: " + std::to_string(dropped) +
                       " line(s) of worker output dropped: standard error was not being read\n",
                   std::chrono::steady_clock::now() + std::chrono::seconds(1));
  }
  return status;
}

}  // namespace procpool::tool
