#include "callback_scope.hpp"

#include <pthread.h>  // pthread_sigmask
#include <signal.h>   // SIGPIPE
#include <unistd.h>   // write

#include <cerrno>     // errno
#include <cstdio>     // std::snprintf
#include <exception>  // std::exception

namespace procpool::detail {

// Writes to the host's stderr without ever raising SIGPIPE in it (its stderr may be a pipe
// whose reader is gone): SIGPIPE is blocked in this thread around the write, and the one the
// write raised, if any, is consumed before the old mask comes back.
void write_stderr_quietly(const char* bytes, std::size_t size) noexcept {
  sigset_t pipe_only, old_mask, pending;
  sigemptyset(&pipe_only);
  sigaddset(&pipe_only, SIGPIPE);
  if (::pthread_sigmask(SIG_BLOCK, &pipe_only, &old_mask) != 0) return;
  const int saved_errno = errno;
  const bool was_pending = ::sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1;
  if (::write(STDERR_FILENO, bytes, size) < 0 && errno == EPIPE && !was_pending) {
    const timespec zero{0, 0};
    while (::sigtimedwait(&pipe_only, nullptr, &zero) < 0 && errno == EINTR) {
    }
  }
  errno = saved_errno;
  ::pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
}

thread_local CallbackScope* tls_callbacks = nullptr;

void callback_threw(const char* callback, long long item, int pid) noexcept {
  const char* what = "an exception not derived from std::exception";
  try {
    throw;
  } catch (const std::exception& e) {
    what = e.what();
  } catch (...) {
  }
  char item_text[48] = "";
  if (item >= 0) std::snprintf(item_text, sizeof item_text, " for item %lld", item);
  char pid_text[48] = "";
  if (pid > 0) std::snprintf(pid_text, sizeof pid_text, " (task answered by worker pid %d)", pid);
  char text[1024];
  int n = std::snprintf(text, sizeof text,
                        "procpool: %s%s threw: %s%s; caught and counted in "
                        "PoolMetrics::callback_errors, the other callbacks still run\n",
                        callback, item_text, what, pid_text);
  if (n < 0) return;
  if (static_cast<std::size_t>(n) >= sizeof text) {
    n = sizeof text - 1;
    text[n - 1] = '\n';
  }
  write_stderr_quietly(text, static_cast<std::size_t>(n));
  if (tls_callbacks != nullptr) ++tls_callbacks->errors;
}

void item_callback_threw(std::size_t index, int pid) noexcept {
  callback_threw("a submit_chunked item callback", static_cast<long long>(index), pid);
}

}  // namespace procpool::detail
