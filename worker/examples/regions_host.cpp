// A host for regions.cpp: SharedArrayBuffer with Atomics, across processes. The host
// writes 123 into a named region, a worker fetch_adds 1, and the host reads 124.
// docs/dataplane.md, "Named shared regions".
//
//   procpool-regions-host [WORKER]   (default: procpool-worker-regions next to this program)
#include <cstdint>    // std::uint64_t
#include <cstdio>     // std::printf
#include <exception>  // std::exception

#include "procpool/pool.hpp"
#include "procpool/shared_array.hpp"
#include "sibling_program.hpp"

int main(int argc, char** argv) {
  try {
    procpool::PoolOptions options;
    options.executable =
        argc > 1 ? argv[1] : procpool::examples::sibling_program("procpool-worker-regions");
    options.min_workers = 1;
    options.regions = {{"counters", 4096}};
    procpool::Pool pool(options);
    procpool::SharedArray<std::uint64_t> counters(pool.region("counters"));
    counters.at(0).store(123);
    const std::string added = pool.submit("add", "counters 0 1").get();
    std::printf("the worker's fetch_add returned %s; the host reads %llu\n", added.c_str(),
                static_cast<unsigned long long>(counters.at(0).load()));
    return counters.at(0).load() == 124 ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "procpool-regions-host: %s\n", e.what());
    return 1;
  }
}
