// A tiny program the launcher tests start. It reports what it was given and what it inherited, so
// the tests can check the child side of procpool::detail::launch(). Plain POSIX I/O only.
//
//   launcher_test_child report [args...]  prints one tab-separated record per line (values escaped:
//                                         backslash -> \\, newline -> \n), then exits 0:
//       arg <i> <argv[i]>            every argv entry (argv[0] included)
//       env <NAME=VALUE>             every environment entry
//       fd <n> <readlink target>     every open fd (the directory fd used to list them excluded)
//       blocked <sig>                every blocked signal
//       disp <sig> DFL|IGN|HANDLER   the disposition of signals 1..31
//       pid|ppid|pgid <n>            its ids
//       pdeathsig <sig>              prctl(PR_GET_PDEATHSIG)
//   launcher_test_child stderr <text>    writes <text> to fd 2, exits 0
//   launcher_test_child both             writes "to-stdout" to fd 1, "to-stderr" to fd 2, exits 0
//   launcher_test_child echo-stdin       copies fd 0 to fd 1 until EOF, exits 0
//   launcher_test_child pause            writes "ready\n" to fd 1, then waits for a signal forever
//   launcher_test_child exit <code>      exits with <code>

#include <dirent.h>     // opendir, readdir, dirfd
#include <signal.h>     // sigaction, sigprocmask
#include <sys/prctl.h>  // prctl, PR_GET_PDEATHSIG
#include <unistd.h>     // write, read, readlink, getpid

#include <cerrno>   // errno
#include <cstdio>   // std::snprintf
#include <cstdlib>  // std::atoi
#include <cstring>  // std::strcmp, std::strlen
#include <string>   // std::string

extern char** environ;

namespace {

bool write_all(int fd, const std::string& text) {
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<std::size_t>(n);
  }
  return true;
}

// Values are escaped so that one record stays one line: '\\' -> "\\\\", newline -> "\\n".
std::string escape(const std::string& text) {
  std::string out;
  for (const char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string line(const std::string& a, const std::string& b) { return a + "\t" + b + "\n"; }
std::string line(const std::string& a, long b) { return line(a, std::to_string(b)); }

int report(int argc, char** argv) {
  std::string out;
  for (int i = 0; i < argc; ++i) out += line("arg", std::to_string(i) + "\t" + escape(argv[i]));
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) out += line("env", escape(*e));

  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return 2;
  const int own = ::dirfd(dir);
  while (const dirent* entry = ::readdir(dir)) {
    if (entry->d_name[0] == '.') continue;
    const int fd = std::atoi(entry->d_name);
    if (fd == own) continue;
    char target[512] = {};
    const std::string link = std::string("/proc/self/fd/") + entry->d_name;
    const ssize_t n = ::readlink(link.c_str(), target, sizeof(target) - 1);
    out += line("fd", std::to_string(fd) + "\t" + (n > 0 ? escape(std::string(target, n)) : "?"));
  }
  ::closedir(dir);

  sigset_t mask;
  sigemptyset(&mask);
  if (::sigprocmask(SIG_SETMASK, nullptr, &mask) != 0) return 2;
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sigismember(&mask, sig) == 1) out += line("blocked", sig);
  }
  for (int sig = 1; sig <= 31; ++sig) {
    struct sigaction action {};
    if (::sigaction(sig, nullptr, &action) != 0) return 2;
    const char* kind = action.sa_handler == SIG_DFL   ? "DFL"
                       : action.sa_handler == SIG_IGN ? "IGN"
                                                      : "HANDLER";
    out += line("disp", std::to_string(sig) + "\t" + kind);
  }
  out += line("pid", ::getpid());
  out += line("ppid", ::getppid());
  out += line("pgid", ::getpgrp());
  int pdeathsig = -1;
  ::prctl(PR_GET_PDEATHSIG, &pdeathsig, 0, 0, 0);
  out += line("pdeathsig", pdeathsig);
  return write_all(1, out) ? 0 : 3;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return 64;
  const std::string mode = argv[1];
  if (mode == "report") return report(argc, argv);
  if (mode == "stderr" && argc == 3) return write_all(2, argv[2]) ? 0 : 3;
  if (mode == "both") return write_all(1, "to-stdout") && write_all(2, "to-stderr") ? 0 : 3;
  if (mode == "echo-stdin") {
    char buffer[4096];
    for (;;) {
      const ssize_t n = ::read(0, buffer, sizeof(buffer));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return 3;
      if (n == 0) return 0;
      if (!write_all(1, std::string(buffer, static_cast<std::size_t>(n)))) return 3;
    }
  }
  if (mode == "pause") {
    if (!write_all(1, "ready\n")) return 3;
    for (;;) ::pause();
  }
  if (mode == "exit" && argc == 3) return std::atoi(argv[2]);
  return 64;
}
