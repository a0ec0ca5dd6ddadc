// pool_host: a program that embeds a procpool::Pool, for the supervisor-death test. It starts a
// pool of two crashy workers, has each start a child of its own ("grandchild"), prints
//   workers W1 W2 grandchildren G1 G2
// on stdout, and then waits to be killed.
//
//   pool_host CRASHY_WORKER
#include <unistd.h>  // pause

#include <cstdio>     // std::printf, std::fflush
#include <exception>  // std::exception
#include <set>        // std::set
#include <string>     // std::string

#include "procpool/pool.hpp"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: pool_host CRASHY_WORKER\n");
    return 2;
  }
  try {
    procpool::PoolOptions options;
    options.executable = argv[1];
    options.min_workers = options.max_workers = 2;
    options.pipeline_depth = 1;  // one task per worker: two tasks land on two workers
    procpool::Pool pool(options);
    std::set<int> workers;
    for (const procpool::WorkerMetrics& w : pool.metrics().workers) workers.insert(w.pid);
    auto first = pool.submit("grandchild", "");
    auto second = pool.submit("grandchild", "");
    const std::string g1 = first.get(), g2 = second.get();
    std::printf("workers");
    for (const int pid : workers) std::printf(" %d", pid);
    std::printf(" grandchildren %s %s\n", g1.c_str(), g2.c_str());
    std::fflush(stdout);
    for (;;) ::pause();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pool_host: %s\n", e.what());
    return 1;
  }
}
