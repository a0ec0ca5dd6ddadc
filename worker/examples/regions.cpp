// Named shared regions (docs/dataplane.md, "Named shared regions"): handlers that read and
// update counters in a region the pool declares (PoolOptions::regions), through
// procpool::SharedArray. regions_host.cpp is a host that uses it.
//
//   add "NAME INDEX DELTA"           counter INDEX of region NAME += DELTA; replies the new value
//   add_then_die "NAME INDEX DELTA"  the same, then dies of SIGKILL before replying
//   get "NAME INDEX"                 replies counter INDEX of region NAME
//   inspect "NAME"                   replies "MODE SEALS" of the region's fd (octal mode, and
//                                    "sealed" if it can neither grow nor shrink nor be resealed)
#include <fcntl.h>     // fcntl, F_GET_SEALS
#include <signal.h>    // raise, SIGKILL
#include <sys/stat.h>  // fstat

#include <cstdint>    // std::uint64_t
#include <cstdlib>    // std::getenv
#include <sstream>    // parsing the input
#include <stdexcept>  // std::invalid_argument
#include <string>     // replies

#include "procpool/region_list.hpp"
#include "procpool/shared_array.hpp"
#include "procpool/worker.hpp"

namespace {

struct Request {
  std::string region;
  std::size_t index = 0;
  std::uint64_t delta = 0;
};

Request parse(std::string_view input) {
  std::istringstream in{std::string(input)};
  Request request;
  in >> request.region >> request.index >> request.delta;
  if (request.region.empty()) throw std::invalid_argument("expected \"NAME INDEX [DELTA]\"");
  return request;
}

std::string inspect(const std::string& name) {
  const char* list = std::getenv(procpool::kRegionsEnv);
  procpool::RegionFds fds;
  if (list == nullptr || !procpool::decode_region_list(list, fds)) return "no regions";
  for (const auto& [region, fd] : fds) {
    if (region != name) continue;
    struct stat info {};
    if (::fstat(fd, &info) != 0) return "fstat failed";
    const int seals = ::fcntl(fd, F_GET_SEALS);
    const bool sealed = seals >= 0 && (seals & F_SEAL_GROW) != 0 && (seals & F_SEAL_SHRINK) != 0 &&
                        (seals & F_SEAL_SEAL) != 0;
    std::ostringstream out;
    out << std::oct << (info.st_mode & 07777) << (sealed ? " sealed" : " unsealed");
    return out.str();
  }
  return "no region " + name;
}

}  // namespace

int main(int argc, char** argv) {
  procpool::Worker worker(argc, argv);
  auto counter = [&worker](const Request& request) {
    return procpool::SharedArray<std::uint64_t>(worker.region(request.region)).at(request.index);
  };
  worker.on("add", [&](procpool::Task& task) {
    const Request request = parse(task.input());
    task.reply(std::to_string(counter(request).fetch_add(request.delta) + request.delta));
  });
  worker.on("add_then_die", [&](procpool::Task& task) {
    const Request request = parse(task.input());
    counter(request).fetch_add(request.delta);
    ::raise(SIGKILL);
  });
  worker.on("get", [&](procpool::Task& task) {
    task.reply(std::to_string(counter(parse(task.input())).load()));
  });
  worker.on("inspect",
            [](procpool::Task& task) { task.reply(inspect(std::string(task.input()))); });
  return worker.run();
}
