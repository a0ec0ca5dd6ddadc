#include "procpool/shutdown_signals.hpp"

#include <fcntl.h>   // O_CLOEXEC, O_NONBLOCK
#include <poll.h>    // poll
#include <signal.h>  // sigaction
#include <unistd.h>  // pipe2, read, write

#include <atomic>              // the handler's pipe, the one-instance flag
#include <cerrno>              // errno
#include <condition_variable>  // wait()
#include <cstdio>              // std::fprintf
#include <exception>           // std::exception
#include <iterator>            // std::size
#include <mutex>               // std::mutex
#include <thread>              // the watcher and the graceful action

#include "procpool/error.hpp"
#include "procpool/pool.hpp"

namespace procpool {
namespace {

constexpr int kSignals[] = {SIGTERM, SIGINT};
constexpr unsigned char kQuit = 0;  // no signal has number 0

// The pipe the handler writes to. Created once and never closed: a handler still running on
// another thread while an instance goes away must not write into an fd number reused since.
std::atomic<int> g_write_fd{-1};
int g_read_fd = -1;
std::once_flag g_pipe_once;
std::atomic<bool> g_active{false};

extern "C" void on_signal(int signo) {
  const int saved_errno = errno;
  const unsigned char byte = static_cast<unsigned char>(signo);
  const int fd = g_write_fd.load(std::memory_order_relaxed);
  if (fd >= 0) (void)!::write(fd, &byte, 1);  // full pipe: that many signals are pending anyway
  errno = saved_errno;
}

void make_pipe() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) throw_errno(errno, "ShutdownSignals: pipe2");
  g_read_fd = fds[0];
  g_write_fd.store(fds[1], std::memory_order_relaxed);
}

void run_reporting(const std::function<void()>& action, const char* which) noexcept {
  try {
    if (action) action();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "procpool::ShutdownSignals: the %s action threw: %s\n", which, e.what());
  } catch (...) {
    std::fprintf(stderr, "procpool::ShutdownSignals: the %s action threw\n", which);
  }
}

}  // namespace

struct ShutdownSignals::State {
  std::function<void()> graceful, immediate;
  struct sigaction previous[std::size(kSignals)]{};
  std::thread watcher, stopper;

  mutable std::mutex mu;
  std::condition_variable done_cv;
  unsigned received = 0;
  int first_signal = 0;
  bool done = false;

  void finished() {
    std::lock_guard lock(mu);
    done = true;
    done_cv.notify_all();
  }

  // Reads signal numbers until the quit byte. Runs with every signal blocked.
  void watch() {
    for (;;) {
      pollfd in{g_read_fd, POLLIN, 0};
      if (::poll(&in, 1, -1) < 0) continue;  // EINTR cannot come (all blocked); be safe
      unsigned char bytes[64];
      const ssize_t n = ::read(g_read_fd, bytes, sizeof bytes);
      if (n <= 0) continue;
      for (ssize_t i = 0; i < n; ++i) {
        if (bytes[i] == kQuit) return;
        unsigned count;
        {
          std::lock_guard lock(mu);
          count = ++received;
          if (count == 1) first_signal = bytes[i];
        }
        if (count == 1) {
          // On its own thread: a second signal must be seen while the graceful stop runs.
          try {
            stopper = std::thread([this] {
              run_reporting(graceful, "graceful");
              finished();
            });
          } catch (...) {
            run_reporting(graceful, "graceful");
            finished();
          }
        } else if (count == 2) {
          run_reporting(immediate, "immediate");
          finished();
        }
      }
    }
  }
};

ShutdownSignals::ShutdownSignals(Pool& pool)
    : ShutdownSignals([&pool] { pool.shutdown(); }, [&pool] { pool.terminate(); }) {}

ShutdownSignals::ShutdownSignals(std::function<void()> graceful, std::function<void()> immediate)
    : state_(std::make_unique<State>()) {
  if (g_active.exchange(true)) {
    throw Error("procpool::ShutdownSignals: another instance is active (one at a time)");
  }
  try {
    std::call_once(g_pipe_once, make_pipe);
    unsigned char stale[64];  // bytes a previous instance left unread
    while (::read(g_read_fd, stale, sizeof stale) > 0) {
    }
    state_->graceful = std::move(graceful);
    state_->immediate = std::move(immediate);
    // Started with every signal blocked (the new thread inherits the mask): the handler then
    // never runs on the watcher or the graceful action's thread.
    sigset_t all, old_mask;
    sigfillset(&all);
    ::pthread_sigmask(SIG_BLOCK, &all, &old_mask);
    try {
      state_->watcher = std::thread([state = state_.get()] { state->watch(); });
    } catch (...) {
      ::pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
      throw;
    }
    ::pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
    struct sigaction action {};
    action.sa_handler = on_signal;
    action.sa_flags = SA_RESTART;
    sigfillset(&action.sa_mask);
    for (std::size_t i = 0; i < std::size(kSignals); ++i) {
      if (::sigaction(kSignals[i], &action, &state_->previous[i]) != 0) {
        const int error = errno;
        for (std::size_t k = 0; k < i; ++k) ::sigaction(kSignals[k], &state_->previous[k], nullptr);
        const unsigned char quit = kQuit;
        (void)!::write(g_write_fd.load(), &quit, 1);
        state_->watcher.join();
        throw_errno(error, "procpool::ShutdownSignals: sigaction");
      }
    }
  } catch (...) {
    g_active.store(false);
    throw;
  }
}

ShutdownSignals::~ShutdownSignals() {
  for (std::size_t i = 0; i < std::size(kSignals); ++i) {
    ::sigaction(kSignals[i], &state_->previous[i], nullptr);
  }
  const unsigned char quit = kQuit;
  // The pipe holds a signal per byte, far fewer than its size; if it were full the watcher is
  // reading it, so retry until the quit byte is in.
  while (::write(g_write_fd.load(), &quit, 1) != 1) {
    pollfd out{g_write_fd.load(), POLLOUT, 0};
    ::poll(&out, 1, 100);
  }
  state_->watcher.join();
  if (state_->stopper.joinable()) state_->stopper.join();
  g_active.store(false);
}

void ShutdownSignals::wait() {
  std::unique_lock lock(state_->mu);
  state_->done_cv.wait(lock, [&] { return state_->done; });
}

bool ShutdownSignals::wait_for(std::chrono::milliseconds timeout) {
  std::unique_lock lock(state_->mu);
  return state_->done_cv.wait_for(lock, timeout, [&] { return state_->done; });
}

unsigned ShutdownSignals::received() const {
  std::lock_guard lock(state_->mu);
  return state_->received;
}

int ShutdownSignals::first_signal() const {
  std::lock_guard lock(state_->mu);
  return state_->first_signal;
}

}  // namespace procpool
