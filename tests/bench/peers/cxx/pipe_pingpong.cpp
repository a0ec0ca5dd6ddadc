// Peers `pipe` and `socketpair`: docs/workloads.md L1 as an 8-byte ping-pong between two processes
// (a fork()ed child replies x + 1), over two pipes and over one AF_UNIX SOCK_STREAM socketpair.
// Blocking reads on both sides: these are the kernel's floor for a sleeping round trip.
//
// Usage: procpool-peer-pipe [--workload L1]

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cinttypes>
#include <cstdint>
#include <vector>

#include "peer_common.hpp"

namespace {

using namespace procpool::bench;
using namespace procpool::bench::peers;

// Runs the child's loop (read x, write x + 1 until EOF) and the parent's measured loop.
// `to_child` / `from_child` are the parent's ends; `child_in` / `child_out` the child's.
void pingpong(const char* impl, int to_child, int from_child, int child_in, int child_out) {
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) fail("fork");
  if (pid == 0) {
    die_with_parent(parent);
    close(to_child);
    if (from_child != to_child) close(from_child);
    std::uint64_t x = 0;
    while (read_full(child_in, &x, sizeof x)) {
      const std::uint64_t r = x + 1;
      if (!write_full(child_out, &r, sizeof r)) _exit(1);
    }
    _exit(0);  // EOF: the parent is done
  }
  children().push_back(pid);
  close(child_in);
  if (child_out != child_in) close(child_out);

  std::vector<double> samples;
  samples.reserve(kL1Measured);
  for (std::size_t i = 0; i < kL1Warmup + kL1Measured; ++i) {
    const std::uint64_t x = i < kL1Warmup ? i : kL1Base + (i - kL1Warmup);
    std::uint64_t r = 0;
    const std::uint64_t t0 = now_ns();
    if (!write_full(to_child, &x, sizeof x)) fail("%s: write", impl);
    if (!read_full(from_child, &r, sizeof r)) fail("%s: read", impl);
    const std::uint64_t t1 = now_ns();
    if (r != x + 1) wrong("%s: sent %" PRIu64 ", got %" PRIu64, impl, x, r);
    if (i >= kL1Warmup) samples.push_back(static_cast<double>(t1 - t0) / 1e3);
  }
  // EOF tells the child to exit.
  if (to_child == from_child) {
    if (shutdown(to_child, SHUT_WR) != 0) fail("shutdown");
  } else {
    close(to_child);
  }
  reap_ok(pid, impl);
  close(from_child);
  print_line("L1", impl, "p50", percentile_nearest_rank(samples, 0.50), "us");
  print_line("L1", impl, "p99", percentile_nearest_rank(samples, 0.99), "us");
}

}  // namespace

int main(int argc, char** argv) {
  arm_watchdog(120);
  if (!wants(argc, argv, "L1")) return 0;
  {
    int request[2], response[2];
    if (pipe2(request, O_CLOEXEC) != 0 || pipe2(response, O_CLOEXEC) != 0) fail("pipe2");
    // parent writes request[1], reads response[0]; child reads request[0], writes response[1]
    pingpong("pipe", request[1], response[0], request[0], response[1]);
  }
  {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) fail("socketpair");
    pingpong("socketpair", sv[0], sv[0], sv[1], sv[1]);
  }
  return 0;
}
