#include "pool_options_check.hpp"

#include <cstdint>  // sizes
#include <string>   // messages
#include <thread>   // hardware_concurrency

#include "pool_core.hpp"  // kMaxPipelineDepth
#include "procpool/error.hpp"
#include "procpool/region_list.hpp"
#include "procpool/ring_data.hpp"
#include "procpool/wire_format.hpp"

namespace procpool::detail {

unsigned default_min_workers(const PoolOptions& o) {
  if (o.min_workers != 0) return o.min_workers;
  const unsigned cpus = std::thread::hardware_concurrency();
  return cpus == 0 ? 1 : cpus;
}

void validate_pool_options(const PoolOptions& o, unsigned min_workers, unsigned max_workers) {
  auto bad = [](const std::string& what) { throw Error("procpool::Pool: " + what); };
  if (o.executable.empty()) bad("options.executable is empty");
  if (max_workers < min_workers) {
    bad("max_workers (" + std::to_string(max_workers) + ") is below min_workers (" +
        std::to_string(min_workers) + ")");
  }
  if (max_workers > 1024) bad("max_workers above 1024");
  if (o.max_rss != 0 && o.max_rss_hard != 0 && o.max_rss > o.max_rss_hard) {
    bad("max_rss (" + std::to_string(o.max_rss) + ") is above max_rss_hard (" +
        std::to_string(o.max_rss_hard) + ")");
  }
  if (o.pipeline_depth > PoolCore::kMaxPipelineDepth) {
    bad("pipeline_depth above " + std::to_string(PoolCore::kMaxPipelineDepth));
  }
  if (o.max_attempts == 0) bad("max_attempts must be at least 1");
  if (o.max_payload == 0) bad("max_payload must be at least 1 byte");
  if (!is_valid_ring_capacity(o.ring_capacity) || o.ring_capacity < 4096) {
    bad("ring_capacity must be a power of two, at least 4096");
  }
  const std::uint64_t init_room = ring_max_payload(o.ring_capacity) - sizeof(FrameHeader) - 8;
  if (o.worker_data.size() > init_room) {
    bad("worker_data of " + std::to_string(o.worker_data.size()) + " bytes exceeds " +
        std::to_string(init_room) + " (raise ring_capacity)");
  }
  if (o.heartbeat_interval.count() < 1) bad("heartbeat_interval must be at least 1 ms");
  if (o.heartbeat_misses < 2) bad("heartbeat_misses must be at least 2");
  if (o.startup_timeout.count() < 1) bad("startup_timeout must be at least 1 ms");
  if (o.regions.size() > kMaxRegions) bad("more than " + std::to_string(kMaxRegions) + " regions");
  for (std::size_t i = 0; i < o.regions.size(); ++i) {
    const RegionSpec& region = o.regions[i];
    if (!valid_region_name(region.name)) {
      bad("region name \"" + region.name +
          "\" is not 1..64 bytes of letters, digits, '_', '-' and '.'");
    }
    if (region.size == 0) bad("region \"" + region.name + "\" has size 0");
    for (std::size_t j = 0; j < i; ++j) {
      if (o.regions[j].name == region.name) bad("region \"" + region.name + "\" is named twice");
    }
  }
  if (o.restart.initial_backoff.count() < 0 || o.restart.max_backoff < o.restart.initial_backoff) {
    bad("restart backoff: need 0 <= initial_backoff <= max_backoff");
  }
}

}  // namespace procpool::detail
