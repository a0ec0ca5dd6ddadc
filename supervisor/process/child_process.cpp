#include "child_process.hpp"

#include <signal.h>       // kill
#include <sys/syscall.h>  // SYS_pidfd_send_signal
#include <sys/wait.h>     // waitid, waitpid
#include <unistd.h>       // syscall

#include <cerrno>  // errno

namespace procpool::detail {

ChildProcess ChildProcess::launch(const LaunchSpec& spec) {
  const LaunchedProcess launched = detail::launch(spec);
  ChildProcess child;
  child.pid_ = launched.pid;
  child.pidfd_.reset(launched.pidfd);
  return child;
}

bool ChildProcess::signal(int sig) noexcept {
  if (reaped_ || !pidfd_) return false;
  return ::syscall(SYS_pidfd_send_signal, pidfd_.get(), sig, nullptr, 0) == 0;
}

bool ChildProcess::signal_group(int sig) noexcept {
  if (reaped_ || pid_ <= 0) return false;
  return ::kill(-pid_, sig) == 0;
}

std::optional<ExitStatus> ChildProcess::peek_exit() noexcept {
  if (status_) return status_;
  if (pid_ <= 0) return std::nullopt;
  siginfo_t info{};
  if (::waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG | WNOWAIT) != 0) {
    if (errno != ECHILD) return std::nullopt;
    // Someone else reaped it (a host's SIGCHLD handler calling waitpid(-1)): it has exited, with
    // a status nobody can tell us now, and it counts as reaped: its pid and pgid may already be
    // a stranger's.
    reaped_ = true;
    status_ = ExitStatus::unknown();
    return status_;
  }
  if (info.si_pid == 0) return std::nullopt;
  ExitStatus status;
  if (info.si_code == CLD_EXITED) {
    status.code = info.si_status;
  } else {
    status.signaled = true;
    status.signal = info.si_status;
    status.core_dumped = info.si_code == CLD_DUMPED;
  }
  return status;
}

std::optional<ExitStatus> ChildProcess::try_reap() noexcept {
  if (reaped_) return status_;
  if (pid_ <= 0) return std::nullopt;
  int raw = 0;
  pid_t r;
  do {
    r = ::waitpid(pid_, &raw, WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == 0) return std::nullopt;
  reaped_ = true;
  pidfd_.reset();
  if (r == pid_) status_ = ExitStatus::from_wait_status(raw);
  return status_;
}

void ChildProcess::kill_and_reap() noexcept {
  if (reaped_ || pid_ <= 0) return;
  signal_group(SIGKILL);
  signal(SIGKILL);
  int raw = 0;
  pid_t r;
  do {
    r = ::waitpid(pid_, &raw, 0);
  } while (r < 0 && errno == EINTR);
  reaped_ = true;
  pidfd_.reset();
  if (r == pid_) status_ = ExitStatus::from_wait_status(raw);
}

}  // namespace procpool::detail
