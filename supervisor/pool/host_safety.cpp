#include "pool_core.hpp"

#include <pthread.h>  // pthread_atfork
#include <unistd.h>   // getpid

#include <atomic>  // the fork count
#include <string>  // messages
#include <thread>  // the deleting thread

#include "callback_scope.hpp"

namespace procpool::detail {
namespace {

std::atomic<std::uint64_t> g_forks{0};  // fork()s this process came out of as the child

}  // namespace

std::uint64_t PoolCore::fork_generation() noexcept {
  static const bool registered = [] {
    return ::pthread_atfork(nullptr, nullptr,
                            [] { g_forks.fetch_add(1, std::memory_order_relaxed); }) == 0;
  }();
  (void)registered;
  return g_forks.load(std::memory_order_relaxed);
}

int PoolCore::current_pid() noexcept { return static_cast<int>(::getpid()); }

bool PoolCore::forked() const noexcept { return fork_generation() != born_generation_; }

void PoolCore::check_owner() const {
  if (!forked()) return;
  throw Error("procpool::Pool: this pool belongs to process " + std::to_string(owner_pid_) +
              "; a fork()ed child (pid " + std::to_string(current_pid()) +
              ") cannot use it (its workers and threads are the parent's): create a new Pool "
              "in the child");
}

bool PoolCore::in_callback() const noexcept {
  for (const CallbackScope* scope = tls_callbacks; scope != nullptr; scope = scope->outer) {
    if (scope->core == this) return true;
  }
  return false;
}

bool PoolCore::on_supervisor_thread() const noexcept {
  return thread_.get_id() == std::this_thread::get_id();
}

std::uint64_t PoolCore::callback_errors() const {
  std::lock_guard lock(mu_);
  return callback_errors_;
}

void PoolCore::destroy(PoolCore* core) noexcept {
  if (core->forked()) return;  // the parent's: left alone (a deliberate leak in the child)
  if (core->in_callback() || core->on_supervisor_thread()) {
    try {
      std::thread([core] { delete core; }).detach();
    } catch (...) {
      // No thread to finish the stop on: leaking the pool beats destroying it under a
      // running callback.
    }
    return;
  }
  delete core;
}

}  // namespace procpool::detail
