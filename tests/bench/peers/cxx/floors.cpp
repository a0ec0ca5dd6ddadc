// Floors: one round of the docs/workloads.md S1 floors and the C1 `cxx-fork` baseline.
//   S1 spawn-static / spawn-dynamic: posix_spawn of procpool-peer-tiny(-static), which writes one
//      byte to a pipe; timed from the spawn call to the byte read. 5 warm-ups, 200 measured.
//   S1 fork: fork() (no exec), the child writes one byte; same timing.
//   C1 cxx-fork: 512 naive fib(30) in this process against two forked processes computing 256
//      each (static split, fork included); alternated 5 times, medians.
//
// Usage: procpool-peer-floors [--workload S1,C1]

#include <fcntl.h>
#include <spawn.h>
#include <unistd.h>

#include <cinttypes>
#include <cstdint>
#include <string>
#include <vector>

#include "peer_common.hpp"

extern char** environ;

namespace {

using namespace procpool::bench;
using namespace procpool::bench::peers;

std::string sibling(const char* name) {
  char buf[4096];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) fail("readlink(/proc/self/exe)");
  std::string path(buf, static_cast<std::size_t>(n));
  return path.substr(0, path.rfind('/') + 1) + name;
}

// One repetition: start the process, time until its byte arrives, then reap it (untimed).
double spawn_once(const std::string* program) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) fail("pipe2");
  const std::uint64_t t0 = now_ns();
  pid_t pid = -1;
  if (program != nullptr) {
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);  // dup2 clears CLOEXEC
    char* argv[] = {const_cast<char*>(program->c_str()), nullptr};
    const int rc = posix_spawn(&pid, program->c_str(), &actions, nullptr, argv, environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) {
      errno = rc;
      fail("posix_spawn(%s)", program->c_str());
    }
  } else {
    pid = fork();
    if (pid < 0) fail("fork");
    if (pid == 0) _exit(write(fds[1], "x", 1) == 1 ? 0 : 1);
  }
  children().push_back(pid);
  char byte = 0;
  if (!read_full(fds[0], &byte, 1)) fail("read from the spawned process");
  const std::uint64_t t1 = now_ns();
  if (byte != 'x') wrong("S1 floor: got byte %d", byte);
  close(fds[0]);
  close(fds[1]);
  reap_ok(pid, "floor process");
  return static_cast<double>(t1 - t0) / 1e6;
}

void s1_floor(const char* impl, const std::string* program) {
  std::vector<double> samples;
  for (int i = 0; i < 5 + 200; ++i) {
    const double ms = spawn_once(program);
    if (i >= 5) samples.push_back(ms);
  }
  print_line("S1", impl, "p50_ms", percentile_nearest_rank(samples, 0.50), "ms");
}

__attribute__((noinline)) std::uint64_t fib(std::uint64_t n) {
  return n < 2 ? n : fib(n - 1) + fib(n - 2);
}

void c1_fork() {
  constexpr int kTasks = 512;
  constexpr std::uint64_t kFib30 = 832'040;
  volatile std::uint64_t n30 = 30;  // keeps the compiler from folding fib(30)
  std::vector<double> serial, parallel;
  for (int rep = 0; rep < 5; ++rep) {
    std::uint64_t t0 = now_ns();
    std::uint64_t sum = 0;
    for (int i = 0; i < kTasks; ++i) sum += fib(n30);
    if (sum != kTasks * kFib30) wrong("C1 serial sum %" PRIu64, sum);
    serial.push_back(static_cast<double>(now_ns() - t0) / 1e6);

    t0 = now_ns();
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) fail("pipe2");
    pid_t pids[2];
    for (pid_t& pid : pids) {
      pid = fork();
      if (pid < 0) fail("fork");
      if (pid == 0) {
        std::uint64_t part = 0;
        for (int i = 0; i < kTasks / 2; ++i) part += fib(n30);
        _exit(write_full(fds[1], &part, sizeof part) ? 0 : 1);
      }
      children().push_back(pid);
    }
    std::uint64_t total = 0;
    for (int w = 0; w < 2; ++w) {
      std::uint64_t part = 0;
      if (!read_full(fds[0], &part, sizeof part)) fail("C1: read a worker's sum");
      if (part != kTasks / 2 * kFib30) wrong("C1 worker sum %" PRIu64, part);
      total += part;
    }
    const std::uint64_t t1 = now_ns();
    if (total != kTasks * kFib30) wrong("C1 parallel sum %" PRIu64, total);
    parallel.push_back(static_cast<double>(t1 - t0) / 1e6);
    close(fds[0]);
    close(fds[1]);
    for (pid_t pid : pids) reap_ok(pid, "C1 worker");
  }
  const double s = median(serial), p = median(parallel);
  print_line("C1", "cxx-fork", "serial_ms", s, "ms");
  print_line("C1", "cxx-fork", "wall_ms", p, "ms");
  print_line("C1", "cxx-fork", "efficiency_pct", 100.0 * s / (2 * p), "%");
}

}  // namespace

int main(int argc, char** argv) {
  arm_watchdog(120);
  if (wants(argc, argv, "S1")) {
    const std::string tiny_static = sibling("procpool-peer-tiny-static");
    const std::string tiny_dynamic = sibling("procpool-peer-tiny");
    s1_floor("spawn-static", &tiny_static);
    s1_floor("spawn-dynamic", &tiny_dynamic);
    s1_floor("fork", nullptr);
  }
  if (wants(argc, argv, "C1")) c1_fork();
  return 0;
}
