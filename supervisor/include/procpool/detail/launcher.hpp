#pragma once
#include "procpool/detail/require_cxx20.hpp"

// The supervisor's process launcher: vfork + exec of one worker executable with exactly the fds,
// environment, signal state and process group the worker should have (docs/design-rules.md §8-13).
//
// This header includes no Boost header on purpose: Boost.Process v2 and Asio are confined to
// launcher.cpp, the only translation unit that includes them.

#include <cstdint>  // std::uint64_t
#include <string>   // std::string
#include <utility>  // std::pair
#include <vector>   // std::vector

namespace procpool::detail {

struct LaunchSpec {
  // Absolute or relative path of the program. Searched in PATH (like execvp, default
  // "/bin:/usr/bin" when PATH is unset) only if it contains no '/'; the child's argv[0] is then the
  // path found.
  std::string executable;
  // argv[1..]. No element may contain a NUL byte.
  std::vector<std::string> args;
  // Added to, or overriding, the parent's environment (the last pair wins for a repeated name).
  // Names must be non-empty and contain neither '=' nor NUL.
  std::vector<std::pair<std::string, std::string>> env;
  // Fds the child keeps open at the SAME numbers. Each must be open and >= 3 (0, 1 and 2 are set
  // through the fields below). Close-on-exec is cleared in the child only; the parent's fds are
  // left exactly as they were (keep them O_CLOEXEC, docs/design-rules.md §13). Every other fd >= 3
  // is closed in the child, whether or not it is close-on-exec in the parent.
  std::vector<int> inherit_fds;
  int stdin_fd = -1;   // -1: /dev/null; else dup2'ed to 0 in the child
  int stdout_fd = -1;  // -1: inherit the parent's stdout; else dup2'ed to 1 in the child
  int stderr_fd = -1;  // -1: inherit the parent's stderr; else dup2'ed to 2 in the child
  // RLIMIT_DATA (soft and hard) set in the child before exec; 0: inherit the parent's.
  std::uint64_t rlimit_data = 0;
  // The child's working directory (chdir'ed to last, before exec); empty: the parent's. A
  // relative `executable` is still resolved against the parent's directory.
  std::string working_directory;
  // >= 0: the child's umask; -1: the parent's.
  int umask = -1;
  // The child's credentials, set after its fds and before its chdir (the parent must be root):
  // supplementary groups, then gid, then uid. PR_SET_PDEATHSIG, which a change of credentials
  // clears, is set again after it.
  bool set_credentials = false;
  unsigned uid = 0;
  unsigned gid = 0;
  std::vector<unsigned> groups;
  // Non-empty: NAME=<the child's own pid> in its environment (systemd's WATCHDOG_PID), written in
  // the child after the fork, when the pid is known. Overrides an inherited NAME.
  std::string pid_env_name;
};

// A started child. The caller owns both:
//   - `pidfd` (O_CLOEXEC, from pidfd_open right after the spawn): poll it for the child's exit and
//     signal only through pidfd_send_signal (docs/design-rules.md §12); close it after the reap.
//   - `pid`: nobody else reaps it. Reap it with waitpid(pid, ...) once the pidfd is readable; never
//     waitpid(-1) and never SIGCHLD = SIG_IGN anywhere in the supervisor (docs/design-rules.md §8).
// The child leads its own process group (pgid == pid), so kill(-pid, sig) reaches its own children
// too, which PDEATHSIG does not (docs/design-rules.md §11); do that only before the reap.
struct LaunchedProcess {
  int pid = -1;
  int pidfd = -1;
};

// Starts `spec.executable` and returns once it has been exec'ed.
//
// Before forking, checks that the executable exists, is a regular file and is executable by us,
// and validates the spec; each failure throws procpool::Error naming the path and the reason
// ("No such file or directory", "Permission denied", "Is a directory", ...). An exec failure in
// the child throws procpool::Error with the exec errno's text, after the failed child has been
// reaped (no zombie is left). Any other failure after the fork kills and reaps the child before
// throwing. launch() leaves no fd of its own open in the parent, except the returned pidfd.
//
// In the child, before exec: PR_SET_PDEATHSIG = SIGKILL (and _exit if the parent is already gone),
// all signal dispositions reset to SIG_DFL and the signal mask emptied, stdin/stdout/stderr set up,
// close-on-exec cleared on `inherit_fds`, every other fd >= 3 closed, setpgid(0, 0),
// RLIMIT_DATA, umask, credentials, chdir(working_directory).
//
// THREADING: PR_SET_PDEATHSIG fires when the spawning *thread* exits, not the process
// (docs/design-rules.md §11). Call launch() only from one long-lived supervisor thread (the one
// that lives as long as the supervisor), never from a short-lived or pool thread: a worker started
// from a thread that later exits would be SIGKILLed at that moment.
LaunchedProcess launch(const LaunchSpec& spec);

}  // namespace procpool::detail
