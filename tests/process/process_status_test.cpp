// ExitStatus from real wait statuses (exit codes, signals, the core-dump flag) and its
// describe() text; read_process_usage on this process and on one that is gone.

#include "process_status.hpp"

#include <signal.h>        // SIGKILL, raise
#include <sys/resource.h>  // setrlimit, getrusage
#include <sys/wait.h>      // waitpid
#include <time.h>          // clock_gettime
#include <unistd.h>        // fork, _exit

#include <gtest/gtest.h>

#include <cstring>  // std::memset
#include <memory>   // std::unique_ptr
#include <string>   // std::string

namespace procpool::detail {
namespace {

// Forks a child that runs `body` and reaps it: the raw wait status, as the pool gets it.
template <class Body>
int status_of_child(Body body) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    body();
    ::_exit(0);
  }
  EXPECT_GT(pid, 0);
  int status = 0;
  EXPECT_EQ(::waitpid(pid, &status, 0), pid);
  return status;
}

// No core file from the children that die by a signal.
void no_core() {
  const rlimit none{0, 0};
  ::setrlimit(RLIMIT_CORE, &none);
}

TEST(ExitStatus, CleanExit) {
  const ExitStatus s = ExitStatus::from_wait_status(status_of_child([] { ::_exit(0); }));
  EXPECT_FALSE(s.signaled);
  EXPECT_EQ(s.code, 0);
  EXPECT_TRUE(s.clean());
  EXPECT_EQ(s.describe(), "exit code 0");
}

TEST(ExitStatus, ExitCodesAreNotSignals) {
  for (int code : {1, 3, 9, 127, 255}) {
    const ExitStatus s = ExitStatus::from_wait_status(status_of_child([code] { ::_exit(code); }));
    EXPECT_FALSE(s.signaled) << code;
    EXPECT_EQ(s.code, code);
    EXPECT_EQ(s.signal, 0);
    EXPECT_FALSE(s.core_dumped);
    EXPECT_FALSE(s.clean());
    EXPECT_EQ(s.describe(), "exit code " + std::to_string(code));
  }
}

TEST(ExitStatus, KilledBySignal) {
  const ExitStatus kill = ExitStatus::from_wait_status(status_of_child([] {
    no_core();
    ::raise(SIGKILL);
  }));
  EXPECT_TRUE(kill.signaled);
  EXPECT_EQ(kill.signal, SIGKILL);
  EXPECT_EQ(kill.code, 0);
  EXPECT_FALSE(kill.clean());
  EXPECT_FALSE(kill.core_dumped);
  EXPECT_EQ(kill.describe(), "killed by signal 9 (SIGKILL)");

  const ExitStatus term = ExitStatus::from_wait_status(status_of_child([] {
    ::signal(SIGTERM, SIG_DFL);
    ::raise(SIGTERM);
  }));
  EXPECT_EQ(term.signal, SIGTERM);
  EXPECT_EQ(term.describe(), "killed by signal 15 (SIGTERM)");
}

// A signal whose default action dumps core, with core files off: signaled, no core flag.
TEST(ExitStatus, CoreSignalWithoutACoreFile) {
  const ExitStatus s = ExitStatus::from_wait_status(status_of_child([] {
    no_core();
    ::signal(SIGABRT, SIG_DFL);
    ::raise(SIGABRT);
  }));
  EXPECT_TRUE(s.signaled);
  EXPECT_EQ(s.signal, SIGABRT);
  EXPECT_FALSE(s.core_dumped);
  EXPECT_EQ(s.describe(), "killed by signal 6 (SIGABRT)");
}

// The kernel's encoding of "killed by SIGSEGV, core dumped" (the signal number with bit 7 set):
// a real core file depends on the host's core_pattern, so the status is built here.
TEST(ExitStatus, CoreDumpedFlag) {
  const ExitStatus s = ExitStatus::from_wait_status(SIGSEGV | 0x80);
  EXPECT_TRUE(s.signaled);
  EXPECT_EQ(s.signal, SIGSEGV);
  EXPECT_TRUE(s.core_dumped);
  EXPECT_FALSE(s.clean());
  EXPECT_EQ(s.describe(), "killed by signal 11 (SIGSEGV), core dumped");
}

// A signal with no short name (a real-time one) is still described by its number.
TEST(ExitStatus, SignalWithoutAName) {
  const int sig = SIGRTMIN + 3;
  const ExitStatus s = ExitStatus::from_wait_status(status_of_child([sig] {
    ::signal(sig, SIG_DFL);
    ::raise(sig);
  }));
  EXPECT_TRUE(s.signaled);
  EXPECT_EQ(s.signal, sig);
  const std::string text = s.describe();
  EXPECT_EQ(text.rfind("killed by signal " + std::to_string(sig), 0), 0U) << text;
  EXPECT_EQ(text.find("(SIG)"), std::string::npos) << text;
}

double own_cpu_seconds() {
  timespec ts{};
  ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

TEST(ProcessUsage, ReadsThisProcessRssAndCpu) {
  const ProcessUsage before = read_process_usage(::getpid());
  EXPECT_GT(before.rss_bytes, 0U);
  // Burn CPU until the kernel's own clock shows it (bounded: CPU time only grows while we spin).
  const double start = own_cpu_seconds();
  volatile std::uint64_t sink = 0;
  while (own_cpu_seconds() - start < 0.3) sink = sink + 1;
  // Touch 64 MiB so that the resident set must grow by about that much.
  constexpr std::size_t kTouched = 64 << 20;
  std::unique_ptr<char[]> block(new char[kTouched]);
  std::memset(block.get(), 1, kTouched);
  const ProcessUsage after = read_process_usage(::getpid());
  const double cpu_now = own_cpu_seconds();
  EXPECT_GE(after.rss_bytes, before.rss_bytes + kTouched / 2);
  // /proc counts in clock ticks: allow a few of them either side.
  EXPECT_GE(after.cpu_s, start + 0.3 - 0.05);
  EXPECT_LE(after.cpu_s, cpu_now + 0.05);
  EXPECT_EQ(block[kTouched - 1], 1);
}

TEST(ProcessUsage, ADeadProcessReadsAsZero) {
  const pid_t pid = ::fork();
  if (pid == 0) ::_exit(0);
  ASSERT_GT(pid, 0);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);  // reaped: /proc/<pid> is gone
  const ProcessUsage usage = read_process_usage(pid);
  EXPECT_EQ(usage.rss_bytes, 0U);
  EXPECT_EQ(usage.cpu_s, 0.0);
  const ProcessUsage nonsense = read_process_usage(-1);
  EXPECT_EQ(nonsense.rss_bytes, 0U);
  EXPECT_EQ(nonsense.cpu_s, 0.0);
}

}  // namespace
}  // namespace procpool::detail
