#pragma once

// One started child: its pid and pidfd, and the rules for touching them (docs/design-rules.md
// §8, §11-12). Signals to the main process go through the pidfd, so they can never reach a
// recycled pid. Signals to its process group (it leads its own, pgid == pid) go through
// kill(-pgid), which is safe only while the main pid is unreaped: a zombie leader keeps the
// pgid from being reused, so group signals are refused once reaped. The reap is waitpid(pid)
// after the pidfd is readable, never waitpid(-1).

#include <optional>  // std::optional

#include "process_status.hpp"
#include "procpool/detail/launcher.hpp"
#include "procpool/unique_fd.hpp"

namespace procpool::detail {

class ChildProcess {
 public:
  // Launches (from the loop thread, see launcher.hpp). Throws what launch() throws.
  static ChildProcess launch(const LaunchSpec& spec);

  ChildProcess() noexcept = default;
  ChildProcess(ChildProcess&&) noexcept = default;
  ChildProcess& operator=(ChildProcess&&) noexcept = default;
  // Never kills or reaps on its own: the owner decides, and a forgotten child is a bug the
  // owner's tests catch, not something to paper over here.
  ~ChildProcess() = default;

  int pid() const noexcept { return pid_; }
  int pidfd() const noexcept { return pidfd_.get(); }
  bool reaped() const noexcept { return reaped_; }

  // To the main process. False once reaped, or if it already exited (ESRCH).
  bool signal(int sig) noexcept;
  // To the whole process group. False once reaped (never a guess at a recycled pgid).
  bool signal_group(int sig) noexcept;

  // The exit status once the main process has exited, without reaping it (waitid WNOWAIT): the
  // zombie keeps the pgid reserved for signal_group().
  std::optional<ExitStatus> peek_exit() noexcept;
  // Reaps, if it has exited. Idempotent.
  std::optional<ExitStatus> try_reap() noexcept;
  // SIGKILL to the group and the main process, then a blocking reap: for shutdown paths.
  void kill_and_reap() noexcept;

 private:
  int pid_ = -1;
  UniqueFd pidfd_;
  bool reaped_ = false;
  std::optional<ExitStatus> status_;
};

}  // namespace procpool::detail
