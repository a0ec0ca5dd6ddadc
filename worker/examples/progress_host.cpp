// A host for progress.cpp: submits "count" tasks and prints each report as it streams in,
// then the result. docs/dataplane.md, "Streamed results".
//
//   procpool-progress-host [WORKER]   (default: procpool-worker-progress next to this program)
#include <cstdio>     // std::printf
#include <exception>  // std::exception

#include "procpool/pool.hpp"
#include "sibling_program.hpp"

int main(int argc, char** argv) {
  try {
    procpool::PoolOptions options;
    options.executable =
        argc > 1 ? argv[1] : procpool::examples::sibling_program("procpool-worker-progress");
    options.min_workers = 2;
    procpool::Pool pool(options);

    procpool::TaskOptions task;
    task.on_progress = [](const procpool::TaskProgress& progress) {
      std::printf("  progress from pid %d: %.*s\n", progress.worker_pid,
                  static_cast<int>(progress.data.size()), progress.data.data());
    };
    // A future: every report is printed before get() returns.
    procpool::Future<std::string> counted = pool.submit("count", "5", task);
    std::printf("result: %s\n", counted.get().c_str());
    // A callback: its reports, then its outcome, in that order.
    pool.submit("count", "3", task, [](const procpool::TaskOutcome& outcome) {
      std::printf("result: %.*s\n", static_cast<int>(outcome.value().size()),
                  outcome.value().data());
    });
    pool.wait_idle();
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "procpool-progress-host: %s\n", e.what());
    return 1;
  }
}
