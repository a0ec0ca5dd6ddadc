#pragma once
#include "procpool/detail/require_cxx20.hpp"

// procpool::OrphanGuard: what the process's programs and workers leave behind is killed when
// the process dies, however it dies, SIGKILL included (docs/supervisor.md, "When the
// supervisor dies").
//
// Every child procpool launches gets PR_SET_PDEATHSIG = SIGKILL, so it dies with the thread
// that launched it; but its own children (a shell's background jobs, a server's forked
// workers) do not, and would be reparented to init and run on. Each child leads its own process
// group, and those descendants stay in it. The guard is a small helper process, forked by
// install(), to which every launch reports the new group; when the supervisor process dies (the
// helper reads EOF on a pipe only the supervisor holds), the helper SIGKILLs every reported
// group that still has members, then exits.
//
// A group id is only reused by the kernel once the group is empty, and then only by a process
// whose pid it is: the helper remembers each leader's start time and leaves a group alone whose
// leader is another process now. Descendants that left their group (setsid, setpgid) are not
// reached: that is what cgroups are for (systemd's KillMode=control-group).

namespace procpool {

class OrphanGuard {
 public:
  // Forks the helper. Call it early, while the process has one thread (it forks). Throws
  // procpool::SystemError if the pipe or the fork fail. One guard per process.
  OrphanGuard();
  // A normal exit: the supervisor stopped its children already; the helper is told so (EOF)
  // and reaped.
  ~OrphanGuard();
  OrphanGuard(const OrphanGuard&) = delete;
  OrphanGuard& operator=(const OrphanGuard&) = delete;

  int helper_pid() const noexcept { return helper_; }

 private:
  int helper_ = -1;
};

namespace detail {
// Called by the launcher after every launch: the new child's pid, which is its process group.
void report_launched_group(int pid) noexcept;
}  // namespace detail

}  // namespace procpool
