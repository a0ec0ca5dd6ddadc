#include "common/interrupt_signals.hpp"

#include <fcntl.h>   // pipe2, O_NONBLOCK
#include <signal.h>  // sigaction, pthread_sigmask
#include <string.h>  // sigabbrev_np
#include <time.h>    // clock_gettime: async-signal-safe
#include <unistd.h>  // read, write, _exit

#include <atomic>   // the handler's state
#include <cerrno>   // errno
#include <cstdint>  // std::int64_t
#include <utility>  // std::move

#include "procpool/error.hpp"

namespace procpool::tool {
namespace {

// The handler's state. Lock-free atomics are safe to use in a signal handler.
static_assert(std::atomic<int>::is_always_lock_free);
std::atomic<int> g_count{0};
std::atomic<int> g_first{0};
// CLOCK_MONOTONIC ns when the main thread entered a write that may block, or 0.
std::atomic<std::int64_t> g_write_since_ns{0};
std::atomic<int> g_pipe_write{-1};
static_assert(std::atomic<std::int64_t>::is_always_lock_free);

// A write in progress this long is taken as blocked: its reader is not reading.
constexpr std::int64_t kBlockedAfterNs = 100'000'000;

std::int64_t monotonic_ns() noexcept {
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  return std::int64_t{now.tv_sec} * 1'000'000'000 + now.tv_nsec;
}

constexpr int kSignals[] = {SIGINT, SIGTERM};
struct sigaction g_previous[2];
int g_pipe_read = -1;

extern "C" void on_interrupt_signal(int signal) {
  const int saved_errno = errno;
  int none = 0;
  g_first.compare_exchange_strong(none, signal);
  const int count = g_count.fetch_add(1) + 1;
  const std::int64_t writing_since = g_write_since_ns.load();
  const bool blocked = writing_since != 0 && monotonic_ns() - writing_since >= kBlockedAfterNs;
  if (count >= 3 || (count >= 2 && blocked)) ::_exit(128 + g_first.load());
  const char byte = 1;
  (void)!::write(g_pipe_write.load(), &byte, 1);  // full pipe: a wake-up is pending anyway
  errno = saved_errno;
}

sigset_t interrupt_set() {
  sigset_t set;
  sigemptyset(&set);
  for (const int signal : kSignals) sigaddset(&set, signal);
  return set;
}

}  // namespace

InterruptSignals::InterruptSignals() {
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_NONBLOCK | O_CLOEXEC) != 0) throw_errno(errno, "signal self-pipe");
  g_pipe_read = pipe_fds[0];
  g_pipe_write.store(pipe_fds[1]);
  g_count.store(0);
  g_first.store(0);
  struct sigaction action {};
  action.sa_handler = &on_interrupt_signal;
  action.sa_mask = interrupt_set();  // one handler at a time
  action.sa_flags = SA_RESTART;
  for (int i = 0; i < 2; ++i) {
    if (::sigaction(kSignals[i], &action, &g_previous[i]) != 0) {
      const int error = errno;
      for (int j = 0; j < i; ++j) ::sigaction(kSignals[j], &g_previous[j], nullptr);
      throw_errno(error, "sigaction");
    }
  }
}

InterruptSignals::~InterruptSignals() {
  for (int i = 0; i < 2; ++i) ::sigaction(kSignals[i], &g_previous[i], nullptr);
  ::close(g_pipe_write.exchange(-1));
  ::close(g_pipe_read);
  g_pipe_read = -1;
}

int InterruptSignals::fd() const noexcept { return g_pipe_read; }

void InterruptSignals::drain() const noexcept {
  char bytes[64];
  while (::read(g_pipe_read, bytes, sizeof bytes) > 0) {
  }
}

int InterruptSignals::count() const noexcept { return g_count.load(); }
int InterruptSignals::first() const noexcept { return g_first.load(); }
int InterruptSignals::exit_status() const noexcept { return 128 + first(); }

InterruptSignals::BlockingWrite::BlockingWrite() noexcept {
  g_write_since_ns.store(monotonic_ns());
}
InterruptSignals::BlockingWrite::~BlockingWrite() { g_write_since_ns.store(0); }

std::string signal_name(int signal) {
  const char* abbrev = ::sigabbrev_np(signal);
  return abbrev != nullptr ? std::string("SIG") + abbrev : "signal " + std::to_string(signal);
}

std::thread start_thread_without_signals(std::function<void()> body) {
  const sigset_t blocked = interrupt_set();
  sigset_t previous;
  ::pthread_sigmask(SIG_BLOCK, &blocked, &previous);
  struct Restore {
    const sigset_t& mask;
    ~Restore() { ::pthread_sigmask(SIG_SETMASK, &mask, nullptr); }
  } restore{previous};
  return std::thread(std::move(body));  // the new thread inherits the blocked mask
}

}  // namespace procpool::tool
