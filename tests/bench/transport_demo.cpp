// scripts/demo.sh (until the pool lands): a supervisor and a worker process exchange a million
// task and result frames through a shared-memory segment, and the achieved rate is printed.

#include <cstdio>     // std::printf
#include <exception>  // std::exception

#include "procpool_transport.hpp"

int main() {
  constexpr std::uint64_t kTasks = 1'000'000;
  constexpr std::uint32_t kWindow = 1024;
  try {
    std::printf(
        "procpool transport demo: %llu tasks (x -> x + 1) to one worker process through\n"
        "its shared-memory rings, at most %u in flight, every result checked...\n",
        static_cast<unsigned long long>(kTasks), kWindow);
    const double rate = procpool::bench::procpool_pipelined_tasks_per_s(kTasks, kWindow);
    std::printf("done: %llu round trips, %.1f million tasks/s (%.0f ns per task)\n",
                static_cast<unsigned long long>(kTasks), rate / 1e6, 1e9 / rate);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "procpool-transport-demo: %s\n", e.what());
    return 1;
  }
}
