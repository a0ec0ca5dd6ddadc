#include "process_setup.hpp"

#include <signal.h>     // sigaction, SIGTERM, SIGHUP
#include <sys/prctl.h>  // prctl, PR_SET_PDEATHSIG
#include <unistd.h>     // getpid, getpgrp

#include <atomic>   // std::atomic
#include <chrono>   // std::chrono::steady_clock
#include <cstdio>   // std::fprintf
#include <cstdlib>  // std::getenv, std::exit, std::strtol

namespace procpool::detail {
namespace {

// Set by SIGTERM; read by the serving loop between tasks. A lock-free atomic is
// async-signal-safe to store.
std::atomic<bool> g_stop_signal{false};
static_assert(std::atomic<bool>::is_always_lock_free);

extern "C" void on_stop_signal(int) { g_stop_signal.store(true, std::memory_order_relaxed); }

// PDEATHSIG alone does not reach grandchildren. Only a group the worker leads (the launcher
// makes it so); otherwise only the worker itself.
extern "C" void on_supervisor_death(int) {
  ::kill(::getpgrp() == ::getpid() ? 0 : ::getpid(), SIGKILL);
}

void handle(int signal, void (*handler)(int)) {
  struct sigaction action {};
  action.sa_handler = handler;
  sigemptyset(&action.sa_mask);
  action.sa_flags = 0;
  ::sigaction(signal, &action, nullptr);
}

}  // namespace

[[noreturn]] void die(const char* program, const std::string& message) {
  std::fprintf(stderr, "%s: procpool worker: %s\n", program, message.c_str());
  std::exit(2);
}

UniqueFd inherited_fd(const char* program, const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr) {
    die(program, std::string("not started by a procpool supervisor (") + name +
                     " is not set); run it through procpool::Pool or `procpool map -- " + program +
                     "`");
  }
  char* end = nullptr;
  const long fd = std::strtol(value, &end, 10);
  if (end == value || *end != '\0' || fd < 0 || fd > 1'000'000) {
    die(program, std::string(name) + "='" + value + "' is not a file descriptor");
  }
  return UniqueFd(static_cast<int>(fd));
}

void install_stop_handlers() {
  handle(SIGTERM, on_stop_signal);
  handle(SIGINT, on_stop_signal);
}

bool stop_signalled() noexcept { return g_stop_signal.load(std::memory_order_relaxed); }

// The launcher armed PDEATHSIG = SIGKILL before exec; re-arm it as SIGHUP ("the controlling
// process is gone"), whose handler kills the group. prctl replaces the signal atomically: a
// supervisor dying before this line already SIGKILLed the worker, which had no children yet.
void follow_supervisor() {
  handle(SIGHUP, on_supervisor_death);
  ::prctl(PR_SET_PDEATHSIG, SIGHUP, 0, 0, 0);
}

std::uint64_t monotonic_ms() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                        std::chrono::steady_clock::now().time_since_epoch())
                                        .count());
}

}  // namespace procpool::detail
