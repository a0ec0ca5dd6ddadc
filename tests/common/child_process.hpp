#pragma once

// A forked child for multi-process tests: runs a function in the child and ends it with _exit
// (no atexit handlers, no gtest teardown in the child). The parent waits with a bound, through a
// pidfd, and the destructor SIGKILLs and reaps a child that is still running, so a failing test
// never leaves a process or a zombie behind.

#include <poll.h>         // poll
#include <signal.h>       // SIGKILL
#include <sys/syscall.h>  // SYS_pidfd_open
#include <sys/wait.h>     // waitpid
#include <unistd.h>       // fork, _exit

#include <algorithm>  // std::max
#include <cerrno>     // errno, EINTR
#include <chrono>     // std::chrono::milliseconds
#include <cstdio>     // std::fprintf
#include <exception>  // std::exception
#include <optional>   // std::optional
#include <utility>    // std::exchange

namespace procpool::test {

class ChildProcess {
 public:
  // Runs `body()` in a forked child; its return value (int) is the child's exit code.
  template <class Body>
  static ChildProcess fork(Body&& body) {
    const pid_t pid = ::fork();
    if (pid < 0) return ChildProcess(-1);
    if (pid == 0) {
      int code = 1;
      try {
        code = body();
      } catch (const std::exception& e) {
        std::fprintf(stderr, "child: %s\n", e.what());
      } catch (...) {
        std::fprintf(stderr, "child: unknown exception\n");
      }
      ::_exit(code);
    }
    return ChildProcess(pid);
  }

  ChildProcess(ChildProcess&& other) noexcept
      : pid_(std::exchange(other.pid_, -1)), pidfd_(std::exchange(other.pidfd_, -1)) {}
  ChildProcess& operator=(ChildProcess&&) = delete;
  ~ChildProcess() {
    if (pid_ > 0) {
      kill(SIGKILL);
      wait_for_exit(std::chrono::seconds(10));
    }
    if (pidfd_ >= 0) ::close(pidfd_);
  }

  pid_t pid() const noexcept { return pid_; }
  bool started() const noexcept { return pid_ > 0; }

  void kill(int signal) const noexcept {
    if (pid_ <= 0) return;
    // Not reaped yet, so the pid cannot have been reused; the pidfd is still preferred.
    if (pidfd_ >= 0) {
      ::syscall(SYS_pidfd_send_signal, pidfd_, signal, nullptr, 0);
    } else {
      ::kill(pid_, signal);
    }
  }

  // Waits at most `timeout` for the child to exit and reaps it. Returns the raw wait status, or
  // nothing if it is still running.
  std::optional<int> wait_for_exit(std::chrono::milliseconds timeout) {
    if (pid_ <= 0) return std::nullopt;
    int status = 0;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (pidfd_ >= 0) {
        pollfd pfd{pidfd_, POLLIN, 0};
        const int ready = ::poll(&pfd, 1, static_cast<int>(std::max<long>(left.count(), 0)));
        if (ready < 0 && errno == EINTR) continue;
        if (ready <= 0) return std::nullopt;
        if (::waitpid(pid_, &status, 0) != pid_) return std::nullopt;
        break;
      }
      // No pidfd (pidfd_open failed): poll waitpid, still bounded.
      if (::waitpid(pid_, &status, WNOHANG) == pid_) break;
      if (left.count() <= 0) return std::nullopt;
      ::usleep(1000);
    }
    pid_ = -1;
    return status;
  }

  // True if the child exited normally with code 0 within `timeout`.
  bool exited_cleanly(std::chrono::milliseconds timeout) {
    const auto status = wait_for_exit(timeout);
    return status && WIFEXITED(*status) && WEXITSTATUS(*status) == 0;
  }

 private:
  explicit ChildProcess(pid_t pid) noexcept
      : pid_(pid), pidfd_(pid > 0 ? static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)) : -1) {}

  pid_t pid_;
  int pidfd_;
};

}  // namespace procpool::test
