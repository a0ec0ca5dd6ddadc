// The only translation unit that includes Boost.Process / Asio (compiled with
// -DBOOST_PROCESS_V2_HEADER_ONLY, linked with Boost::filesystem).
//
// Boost 1.81's posix::vfork_launcher does the vfork and the exec; everything it and the rest of
// Boost.Process get wrong for us (docs/design-rules.md §9) is handled here:
//   - it leaks non-CLOEXEC fds lying between whitelisted fds (close_all compares an fd with
//     itself): our child-side initializer closes every fd we do not keep, with close_range;
//   - the child inherits the signal mask and ignored signals: the initializer resets both;
//   - on exec failure it calls ::exit() in the child (the supervisor's atexit handlers and static
//     destructors would run, on the supervisor's own memory after a vfork) and its on_exec_error
//     detection is broken (checked with 5 arguments, called with 4): our variadic on_exec_error
//     matches both and _exits instead;
//   - an exec failure leaves an unreaped zombie: we reap launcher.pid ourselves;
//   - the (io_context&, error_code&, ...) overload ignores `ec` and throws: we use the
//     executor + error_code overload;
//   - the process object's destructor SIGKILLs the child: we detach it at once and open our own
//     pidfd;
//   - an exception thrown in the child before exec would unwind into our caller: after the
//     launch, any copy whose pid is not ours _exits.
//
// Why vfork and not fork (default_launcher): fork copies the supervisor's page tables and
// write-protects every private page, so the child's setup and then every thread of the
// supervisor take copy-on-write faults on their next writes, on the path of every worker start
// and restart (docs/benchmarks.md S1, R1). After vfork the child borrows the spawning thread's
// memory until it execs or exits, like glibc's posix_spawn, and reports an exec failure through
// that memory (Boost sets `ec` in the child) instead of a pipe. What that demands of the child:
//   - it writes only what is meant for the parent to see: Boost's `ec`, `pid` and whitelist, and
//     our pid_slot (in env_storage, whose bytes execve copies);
//   - no supervisor signal handler may run in it before the dispositions are reset (it would run
//     on the supervisor's memory and stack): launch() blocks every signal on the spawning thread
//     across the vfork, and the child unblocks them only after resetting every disposition;
//   - it allocates nothing and takes no lock (other supervisor threads keep running beside it),
//     which ChildSetup already guaranteed for the fork.

#include "procpool/detail/launcher.hpp"

#include <fcntl.h>         // open, fcntl, O_CLOEXEC, F_DUPFD_CLOEXEC, AT_EACCESS
#include <grp.h>           // setgroups
#include <pthread.h>       // pthread_sigmask
#include <signal.h>        // sigaction, sigprocmask, SIGKILL
#include <sys/prctl.h>     // prctl, PR_SET_PDEATHSIG
#include <sys/resource.h>  // getrlimit
#include <sys/stat.h>      // stat
#include <sys/syscall.h>   // SYS_close_range, SYS_pidfd_open
#include <sys/wait.h>      // waitpid
#include <unistd.h>        // getpid, getppid, setpgid, close, dup2, environ

#include <algorithm>    // std::sort, std::unique, std::min
#include <cerrno>       // errno
#include <cstdlib>      // std::getenv
#include <exception>    // std::exception
#include <string>       // std::string, std::to_string
#include <string_view>  // std::string_view

#include <boost/asio/io_context.hpp>
#include <boost/process/v2/posix/vfork_launcher.hpp>  // also pulls in the header-only implementation
#include <boost/process/v2/process.hpp>
#include <boost/system/error_code.hpp>

#include "procpool/error.hpp"
#include "procpool/orphan_guard.hpp"
#include "procpool/unique_fd.hpp"

namespace procpool::detail {
namespace {

namespace bp = boost::process::v2;

// ThreadSanitizer's runtime turns vfork into fork; the child's errno would then never reach the
// parent (Boost's vfork_launcher reports it through shared memory), so an exec failure would
// look like a start. Under TSan the fork launcher, with its exec-error pipe, is used instead.
#if defined(__SANITIZE_THREAD__)
#define PROCPOOL_LAUNCH_WITH_FORK 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define PROCPOOL_LAUNCH_WITH_FORK 1
#endif
#endif
#if defined(PROCPOOL_LAUNCH_WITH_FORK)
using Launcher = bp::posix::default_launcher;
#else
using Launcher = bp::posix::vfork_launcher;
#endif

constexpr std::string_view kDefaultPath = "/bin:/usr/bin";  // glibc's execvp default

std::string quoted(std::string_view path) { return "'" + std::string(path) + "'"; }

// Throws unless `path` is an existing regular file we may execute.
void check_executable(const std::string& path) {
  const std::string what = "cannot launch " + quoted(path);
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    const int error = errno;
    throw_errno(error, what);
  }
  if (S_ISDIR(st.st_mode)) throw_errno(EISDIR, what);
  if (!S_ISREG(st.st_mode)) throw Error(what + ": not a regular file");
  // AT_EACCESS: the effective ids are the ones execve checks.
  if (::faccessat(AT_FDCWD, path.c_str(), X_OK, AT_EACCESS) != 0) {
    const int error = errno;
    throw_errno(error, what);
  }
}

// A path that contains a '/' is used as given (after the checks); a bare name is looked up in
// PATH like execvp does: empty entries mean the current directory, the first executable regular
// file wins, and EACCES is reported if a candidate existed but none could be executed.
std::string resolve_executable(const std::string& name) {
  if (name.empty()) throw Error("cannot launch: the executable path is empty");
  if (name.find('\0') != std::string::npos) {
    throw Error("cannot launch " + quoted(name) + ": the path contains a NUL byte");
  }
  if (name.find('/') != std::string::npos) {
    check_executable(name);
    return name;
  }
  const char* env_path = std::getenv("PATH");
  const std::string search(env_path != nullptr ? std::string_view(env_path) : kDefaultPath);
  int error = ENOENT;
  std::size_t begin = 0;
  for (;;) {
    const std::size_t end = std::min(search.find(':', begin), search.size());
    const std::string_view dir(search.data() + begin, end - begin);
    std::string candidate = dir.empty() ? "./" + name : std::string(dir) + "/" + name;
    struct stat st {};
    if (::stat(candidate.c_str(), &st) == 0) {
      if (S_ISREG(st.st_mode) && ::faccessat(AT_FDCWD, candidate.c_str(), X_OK, AT_EACCESS) == 0) {
        return candidate;
      }
      error = EACCES;
    } else if (errno == EACCES) {
      error = EACCES;
    }
    if (end == search.size()) break;
    begin = end + 1;
  }
  throw_errno(error, "cannot launch " + quoted(name) + " (searched PATH=\"" + search + "\")");
}

bool contains_nul(std::string_view s) { return s.find('\0') != std::string_view::npos; }

// Kills (if still running) and reaps our own child `pid`. waitpid(pid, WNOHANG) == 0 proves the
// child is ours and unreaped, so its pid cannot have been reused and kill() is safe; ECHILD means
// it was already reaped (by Boost's process destructor) and must not be signalled.
void kill_and_reap(int pid) noexcept {
  if (pid <= 0) return;
  int status = 0;
  pid_t r;
  do {
    r = ::waitpid(pid, &status, WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r != 0) return;  // reaped now, or not our child any more
  ::kill(pid, SIGKILL);
  do {
    r = ::waitpid(pid, &status, 0);
  } while (r < 0 && errno == EINTR);
}

// The child-side initializer (docs/design-rules.md §10). Everything it needs is prepared in the
// parent; on_exec_setup runs in the vforked child and only makes async-signal-safe system calls:
// no allocation, no locks, no exceptions, no writes the parent does not expect (see the top).
struct ChildSetup {
  pid_t supervisor_pid = -1;
  std::uint64_t rlimit_data = 0;            // LaunchSpec::rlimit_data
  const char* working_directory = nullptr;  // LaunchSpec::working_directory, or null
  int umask = -1;                           // LaunchSpec::umask
  bool set_credentials = false;             // LaunchSpec::set_credentials, uid, gid, groups
  uid_t uid = 0;
  gid_t gid = 0;
  const gid_t* groups = nullptr;
  std::size_t group_count = 0;
  // LaunchSpec::pid_env_name: where the child writes its own pid, in decimal, into its copy of
  // the environment ("NAME=" is already there, NULs follow), or null.
  char* pid_slot = nullptr;
  int stdio[3] = {-1, -1, -1};  // source fd for 0, 1, 2; -1 leaves that fd as it is
  const int* inherit = nullptr;
  std::size_t inherit_count = 0;
  sigset_t empty_mask{};
  struct sigaction default_action {};
  unsigned long fallback_fd_limit = 0;  // close() loop bound if close_range is missing (ENOSYS)

  // Called by Boost in the child after vfork, before its own (buggy) close_all and execve. A
  // non-zero error_code makes Boost skip the exec, store errno in `ec` (the parent, resumed once
  // we _exit, reports it) and call on_exec_error.
  boost::system::error_code on_exec_setup(bp::posix::default_launcher& launcher,
                                          const bp::filesystem::path& /*executable*/,
                                          const char* const*& /*argv*/) const noexcept {
    const int error = set_up_child(launcher.fd_whitelist);
    if (error == 0) return {};
    errno = error;  // what Boost sends to the parent
    return {error, boost::system::system_category()};
  }

  // Boost 1.81 detects this hook with a 5-argument call and invokes it with 4; a variadic template
  // matches both. Without it Boost calls ::exit(), running the supervisor's atexit handlers and
  // static destructors in the child, on the supervisor's memory. The errno is already in `ec`.
  template <class... Args>
  void on_exec_error(Args&&... /*ignored*/) const noexcept {
    ::_exit(127);
  }

 private:
  static int clear_cloexec(int fd) noexcept {
    const int flags = ::fcntl(fd, F_GETFD);
    if (flags < 0) return errno;
    if ((flags & FD_CLOEXEC) != 0 && ::fcntl(fd, F_SETFD, flags & ~FD_CLOEXEC) != 0) return errno;
    return 0;
  }

  // Closes fds [low, high] (high may be ~0U).
  int close_fds(unsigned int low, unsigned int high) const noexcept {
    if (::syscall(SYS_close_range, static_cast<unsigned long>(low),
                  static_cast<unsigned long>(high), 0UL) == 0) {
      return 0;
    }
    if (errno != ENOSYS) return errno;
    const unsigned long last = std::min<unsigned long>(high, fallback_fd_limit);
    for (unsigned long fd = low; fd <= last; ++fd) ::close(static_cast<int>(fd));
    return 0;
  }

  int set_up_child(const std::vector<int>& whitelist) const noexcept {
    // 1. Die with the supervisor's spawning thread; if the supervisor is already gone (died
    //    between fork and prctl), nobody will ever manage us.
    if (::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) return errno;
    if (::getppid() != supervisor_pid) ::_exit(1);

    // 2. Signals (all blocked since before the vfork): dispositions first (so a signal unblocked
    //    below cannot run a supervisor handler here, on the supervisor's memory), then the mask.
    //    SIGKILL/SIGSTOP and glibc's internal signals (32, 33) reject sigaction with EINVAL; that
    //    is expected and ignored.
    for (int sig = 1; sig < NSIG; ++sig) ::sigaction(sig, &default_action, nullptr);
    if (::sigprocmask(SIG_SETMASK, &empty_mask, nullptr) != 0) return errno;

    // 3. stdin/stdout/stderr. A source that is itself one of 0..2 is first copied above 2, so an
    //    earlier dup2 cannot overwrite it (e.g. stdout_fd = 2 with stderr_fd = 1). The copies are
    //    CLOEXEC and are closed in step 5 anyway.
    int source[3] = {stdio[0], stdio[1], stdio[2]};
    for (int target = 0; target < 3; ++target) {
      if (source[target] >= 0 && source[target] < 3 && source[target] != target) {
        const int moved = ::fcntl(source[target], F_DUPFD_CLOEXEC, 3);
        if (moved < 0) return errno;
        source[target] = moved;
      }
    }
    for (int target = 0; target < 3; ++target) {
      if (source[target] < 0) continue;
      if (source[target] == target) {  // dup2 onto itself would keep CLOEXEC
        if (const int error = clear_cloexec(target)) return error;
        continue;
      }
      while (::dup2(source[target], target) < 0) {
        if (errno != EINTR) return errno;
      }
    }

    // 4. The worker's fds, at the same numbers.
    for (std::size_t i = 0; i < inherit_count; ++i) {
      if (const int error = clear_cloexec(inherit[i])) return error;
    }

    // 5. Close every fd >= 3 except ours and Boost's whitelist (stdio, the inherited fds and,
    //    with the fork launcher under TSan, its exec-error pipe: closing that would make an exec
    //    failure look like success). Both lists are small and unsorted; find the next kept fd by
    //    scanning, so nothing is allocated.
    unsigned int low = 3;
    for (;;) {
      long next = -1;  // the smallest kept fd >= low
      const auto consider = [&](int fd) {
        if (fd >= 0 && static_cast<unsigned int>(fd) >= low && (next < 0 || fd < next)) next = fd;
      };
      for (const int fd : whitelist) consider(fd);
      for (std::size_t i = 0; i < inherit_count; ++i) consider(inherit[i]);
      if (next < 0) {
        if (const int error = close_fds(low, ~0U)) return error;
        break;
      }
      if (static_cast<unsigned int>(next) > low) {
        if (const int error = close_fds(low, static_cast<unsigned int>(next) - 1)) return error;
      }
      low = static_cast<unsigned int>(next) + 1;
    }

    // 6. Our own process group, so the supervisor can signal the worker's descendants too.
    if (::setpgid(0, 0) != 0) return errno;

    // 7. The memory ceiling, if asked for.
    if (rlimit_data != 0) {
      const struct rlimit limit = {static_cast<rlim_t>(rlimit_data),
                                   static_cast<rlim_t>(rlimit_data)};
      if (::setrlimit(RLIMIT_DATA, &limit) != 0) return errno;
    }

    // 8. The umask and the credentials; a change of credentials clears PR_SET_PDEATHSIG, so it
    //    is set again (and the parent checked for again).
    if (umask >= 0) ::umask(static_cast<mode_t>(umask));
    //    Raw system calls, as glibc's posix_spawn makes them: glibc's setuid() and friends
    //    broadcast the change to every thread of the process (a lock and globals shared with
    //    the supervisor's threads after vfork); the child has one thread.
    if (set_credentials) {
      if (::syscall(SYS_setgroups, group_count, groups) != 0) return errno;
      if (::syscall(SYS_setresgid, gid, gid, gid) != 0) return errno;
      if (::syscall(SYS_setresuid, uid, uid, uid) != 0) return errno;
      if (::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) return errno;
      if (::getppid() != supervisor_pid) ::_exit(1);
    }

    // 9. The working directory (as the program's user): a failure is reported like an exec
    //    failure (its errno).
    if (working_directory != nullptr && ::chdir(working_directory) != 0) return errno;

    // 10. Its own pid, which nobody knew before the fork: digits only, no allocation.
    if (pid_slot != nullptr) {
      char digits[24];
      int n = 0;
      for (auto pid = static_cast<unsigned long>(::getpid()); pid != 0; pid /= 10) {
        digits[n++] = static_cast<char>('0' + pid % 10);
      }
      for (int i = 0; i < n; ++i) pid_slot[i] = digits[n - 1 - i];
    }
    return 0;
  }
};

}  // namespace

LaunchedProcess launch(const LaunchSpec& spec) {
  const pid_t self = ::getpid();  // not cached: a forked copy of the caller may launch too

  // --- Everything that can fail cleanly, before the fork. ---
  // Absolute when the child changes directory: a relative path names the file we checked.
  std::string path = resolve_executable(spec.executable);
  if (!spec.working_directory.empty() && path.front() != '/') {
    char cwd[4096];
    if (::getcwd(cwd, sizeof cwd) == nullptr) throw_errno(errno, "getcwd");
    path = std::string(cwd) + "/" + path;
  }
  const std::string what = "cannot launch " + quoted(path);

  for (const std::string& arg : spec.args) {
    if (contains_nul(arg)) throw Error(what + ": an argument contains a NUL byte");
  }
  for (const auto& [name, value] : spec.env) {
    if (name.empty() || name.find('=') != std::string::npos || contains_nul(name)) {
      throw Error(what + ": invalid environment variable name " + quoted(name));
    }
    if (contains_nul(value)) {
      throw Error(what + ": the value of environment variable " + name + " contains a NUL byte");
    }
  }

  const auto check_open = [&what](int fd, const char* role) {
    if (::fcntl(fd, F_GETFD) == -1) {
      const int error = errno;
      throw_errno(error, what + ": " + role + " " + std::to_string(fd));
    }
  };
  std::vector<int> inherit = spec.inherit_fds;
  std::sort(inherit.begin(), inherit.end());
  inherit.erase(std::unique(inherit.begin(), inherit.end()), inherit.end());
  for (const int fd : inherit) {
    if (fd < 3) {
      throw Error(what + ": inherit_fds may not contain " + std::to_string(fd) +
                  " (use stdin_fd/stdout_fd/stderr_fd for 0, 1 and 2)");
    }
    check_open(fd, "inherit fd");
  }
  if (spec.stdin_fd >= 0) check_open(spec.stdin_fd, "stdin_fd");
  if (spec.stdout_fd >= 0) check_open(spec.stdout_fd, "stdout_fd");
  if (spec.stderr_fd >= 0) check_open(spec.stderr_fd, "stderr_fd");

  // The child's environment: the parent's minus the overridden names, then the overrides (the last
  // pair wins for a repeated name). Copied, so nothing points into `environ` during the fork.
  std::vector<std::string> env_storage;
  const auto overridden = [&spec](std::string_view entry) {
    const std::string_view name = entry.substr(0, entry.find('='));
    for (const auto& kv : spec.env) {
      if (kv.first == name) return true;
    }
    return !spec.pid_env_name.empty() && name == spec.pid_env_name;
  };
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    if (!overridden(*entry)) env_storage.emplace_back(*entry);
  }
  for (std::size_t i = 0; i < spec.env.size(); ++i) {
    bool repeated_later = false;
    for (std::size_t j = i + 1; j < spec.env.size(); ++j) {
      repeated_later = repeated_later || spec.env[j].first == spec.env[i].first;
    }
    if (!repeated_later) env_storage.push_back(spec.env[i].first + "=" + spec.env[i].second);
  }
  if (!spec.pid_env_name.empty()) {
    if (spec.pid_env_name.find_first_of(std::string_view("=\0", 2)) != std::string::npos) {
      throw Error(what + ": invalid pid_env_name " + quoted(spec.pid_env_name));
    }
    // Room for any pid; the NULs after the digits end the entry for execve.
    env_storage.push_back(spec.pid_env_name + "=" + std::string(24, '\0'));
  }
  std::vector<const char*> envp;
  envp.reserve(env_storage.size() + 1);
  for (const std::string& entry : env_storage) envp.push_back(entry.c_str());
  envp.push_back(nullptr);

  UniqueFd dev_null;
  if (spec.stdin_fd < 0) {
    dev_null.reset(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    if (dev_null.get() < 0) {
      const int error = errno;
      throw_errno(error, what + ": open /dev/null");
    }
  }

  ChildSetup setup;
  setup.supervisor_pid = self;
  setup.rlimit_data = spec.rlimit_data;
  if (!spec.working_directory.empty()) setup.working_directory = spec.working_directory.c_str();
  setup.umask = spec.umask;
  std::vector<gid_t> groups(spec.groups.begin(), spec.groups.end());
  if (spec.set_credentials) {
    setup.set_credentials = true;
    setup.uid = static_cast<uid_t>(spec.uid);
    setup.gid = static_cast<gid_t>(spec.gid);
    setup.groups = groups.data();
    setup.group_count = groups.size();
  }
  if (!spec.pid_env_name.empty()) {
    setup.pid_slot = env_storage.back().data() + spec.pid_env_name.size() + 1;
  }
  setup.stdio[0] = spec.stdin_fd >= 0 ? spec.stdin_fd : dev_null.get();
  setup.stdio[1] = spec.stdout_fd;
  setup.stdio[2] = spec.stderr_fd;
  setup.inherit = inherit.data();
  setup.inherit_count = inherit.size();
  sigemptyset(&setup.empty_mask);
  setup.default_action.sa_handler = SIG_DFL;
  sigemptyset(&setup.default_action.sa_mask);
  setup.default_action.sa_flags = 0;
  rlimit limit{};
  setup.fallback_fd_limit = 1UL << 20;
  if (::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY) {
    setup.fallback_fd_limit = std::min<unsigned long>(limit.rlim_cur, 1UL << 20);
  }

  Launcher launcher;
  launcher.env = envp.data();
  // Boost closes everything outside fd_whitelist after our initializer: the worker's fds must be
  // on it too.
  launcher.fd_whitelist.insert(launcher.fd_whitelist.end(), inherit.begin(), inherit.end());
  const bp::filesystem::path executable(path);

  // Never run: it only carries the executor Boost's process handle wants. One per launch, so the
  // forked child's notify_fork has no reactor or descriptors of an earlier launch to rebuild.
  boost::asio::io_context context;
  boost::system::error_code ec;
  std::string failure;
  // Every signal blocked across the vfork (see the top); the child unblocks its own after
  // resetting the dispositions, this thread gets its mask back once the child has exec'ed.
  sigset_t all_signals, old_mask;
  sigfillset(&all_signals);
  ::pthread_sigmask(SIG_SETMASK, &all_signals, &old_mask);
  struct RestoreMask {
    const sigset_t& mask;
    ~RestoreMask() { ::pthread_sigmask(SIG_SETMASK, &mask, nullptr); }
  } restore_mask{old_mask};
  try {
    auto process = launcher(context.get_executor(), ec, executable, spec.args, setup);
    // Its destructor would SIGKILL the child: detach, and drop the returned handle at once (that
    // closes Boost's pidfd and leaves the child alone).
    process.detach();
  } catch (const std::exception& e) {
    if (::getpid() != self) ::_exit(127);  // a stray child copy must never return to our caller
    failure = e.what();
    if (failure.empty()) failure = "unknown error";
  } catch (...) {
    if (::getpid() != self) ::_exit(127);
    failure = "unknown exception";
  }
  if (::getpid() != self) ::_exit(127);

  const int pid = launcher.pid;
  if (!failure.empty() || ec) {
    // After an exec failure the child has written errno and is _exiting; after any other failure
    // it may still be running. Either way: kill if needed and reap it, so no zombie is left.
    kill_and_reap(pid);
    if (!failure.empty()) throw Error("failed to start " + quoted(path) + ": " + failure);
    if (ec.category() == boost::system::system_category() ||
        ec.category() == boost::system::generic_category()) {
      throw_errno(ec.value(), "failed to start " + quoted(path));
    }
    throw Error("failed to start " + quoted(path) + ": " + ec.message());
  }
  if (pid <= 0) throw Error("failed to start " + quoted(path) + ": vfork failed");

  // Still our unreaped child, so the pid cannot have been reused yet: this pidfd is the right one.
  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0) {
    const int error = errno;
    kill_and_reap(pid);
    throw_errno(error, "failed to start " + quoted(path) + ": pidfd_open");
  }
  report_launched_group(pid);  // to the OrphanGuard, if there is one
  return LaunchedProcess{pid, pidfd};
}

}  // namespace procpool::detail
