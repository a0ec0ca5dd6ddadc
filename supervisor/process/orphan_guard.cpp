// OrphanGuard (procpool/orphan_guard.hpp): the helper process and the launcher's reports to it.

#include "procpool/orphan_guard.hpp"

#include <fcntl.h>        // O_CLOEXEC
#include <signal.h>       // kill, signal
#include <sys/prctl.h>    // PR_SET_NAME
#include <sys/syscall.h>  // SYS_close_range
#include <sys/wait.h>     // waitpid
#include <unistd.h>       // fork, pipe2, read, write

#include <atomic>   // the report fd
#include <cerrno>   // errno
#include <cstdio>   // std::snprintf
#include <cstdlib>  // strtoull
#include <vector>   // the groups

#include "procpool/error.hpp"

namespace procpool {
namespace {

// The write end of the pipe to the helper; -1 without a guard.
std::atomic<int> report_fd{-1};

// Field 22 of /proc/PID/stat (the start time, in clock ticks since boot); 0 if it cannot be
// read (no such process).
unsigned long long start_time(int pid) {
  char path[32];
  std::snprintf(path, sizeof path, "/proc/%d/stat", pid);
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  char text[1024];
  const ssize_t n = ::read(fd, text, sizeof text - 1);
  ::close(fd);
  if (n <= 0) return 0;
  text[n] = '\0';
  // The command name may hold spaces and parentheses: the fields start after the last ')'.
  char* field = nullptr;
  for (char* c = text; *c != '\0'; ++c) {
    if (*c == ')') field = c;
  }
  if (field == nullptr) return 0;
  ++field;  // now at " S ...": field 3 follows
  for (int number = 2; number < 22 && *field != '\0'; ++field) {
    if (*field == ' ') ++number;
  }
  return std::strtoull(field, nullptr, 10);
}

struct Group {
  int pgid = 0;
  unsigned long long leader_start = 0;  // 0: it was gone before we looked
};

// Ours still: members left, and the pid not taken by another leader since.
bool still_ours(const Group& group) {
  if (::kill(-group.pgid, 0) != 0 && errno == ESRCH) return false;
  const unsigned long long now = start_time(group.pgid);
  return now == 0 || now == group.leader_start;
}

[[noreturn]] void run_helper(int read_fd) {
  // Only the supervisor's signals to itself, or its group's, reach here: the helper outlives
  // them, and acts on the pipe alone.
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE, SIGUSR1, SIGUSR2}) {
    ::signal(sig, SIG_IGN);
  }
  ::prctl(PR_SET_NAME, "procpool-guard", 0, 0, 0);
  // Not dumpable: a process of our uid could otherwise hold its pipe open through
  // /proc/PID/fd (it would never see EOF) or feed it groups to kill. Its own process group: a
  // terminal's SIGTSTP to the daemon's group must not stop it.
  ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  ::setpgid(0, 0);
  std::vector<Group> groups;
  std::size_t since_prune = 0;
  int pid = 0;
  for (;;) {
    const ssize_t n = ::read(read_fd, &pid, sizeof pid);
    if (n == static_cast<ssize_t>(sizeof pid)) {
      groups.push_back({pid, start_time(pid)});
      // Forget the groups that emptied, now and then: the list stays as long as what runs.
      if (++since_prune >= 1024) {
        since_prune = 0;
        std::erase_if(groups, [](const Group& g) { return !still_ours(g); });
      }
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    break;  // EOF: the supervisor is gone (or said goodbye)
  }
  for (const Group& group : groups) {
    if (still_ours(group)) ::kill(-group.pgid, SIGKILL);
  }
  ::_exit(0);
}

}  // namespace

OrphanGuard::OrphanGuard() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) throw_errno(errno, "OrphanGuard: pipe2");
  const pid_t pid = ::fork();
  if (pid < 0) {
    const int error = errno;
    ::close(fds[0]);
    ::close(fds[1]);
    throw_errno(error, "OrphanGuard: fork");
  }
  if (pid == 0) {
    // Nothing of the supervisor's but the read end: no fd of its keeps a socket or a segment
    // alive after it died.
    ::close(fds[1]);
    if (fds[0] != 3) {
      ::dup2(fds[0], 3);
      ::close(fds[0]);
    }
    ::syscall(SYS_close_range, 4U, ~0U, 0U);
    run_helper(3);
  }
  ::close(fds[0]);
  helper_ = pid;
  // Never blocks the launcher: a helper that cannot take a report (stopped) misses it.
  ::fcntl(fds[1], F_SETFL, ::fcntl(fds[1], F_GETFL) | O_NONBLOCK);
  report_fd.store(fds[1]);
}

OrphanGuard::~OrphanGuard() {
  const int fd = report_fd.exchange(-1);
  if (fd >= 0) ::close(fd);
  int status = 0;
  while (::waitpid(helper_, &status, 0) < 0 && errno == EINTR) {
  }
}

namespace detail {

void report_launched_group(int pid) noexcept {
  const int fd = report_fd.load();
  if (fd < 0) return;
  // 4 bytes: atomic in a pipe. The helper reads at once; a full pipe (64 KiB of reports not
  // read) drops this one rather than stall the launcher.
  while (::write(fd, &pid, sizeof pid) < 0 && errno == EINTR) {
  }
}

}  // namespace detail
}  // namespace procpool
