// Named shared regions (docs/dataplane.md, "Named shared regions"): PoolOptions::regions, opened
// by name by the host (Pool::region) and by every worker (Worker::region), typed through
// procpool::SharedArray; kept across a worker killed mid-update; owner-only and sealed; gone
// with the pool. Real worker processes (the regions example worker); default options besides
// the regions.

#include <gtest/gtest.h>
#include <unistd.h>  // readlink

#include <cstdint>     // std::uint64_t
#include <filesystem>  // /proc/self/fd
#include <string>      // payloads
#include <vector>      // batches

#include "pool_test_support.hpp"  // Watchdog, bounded waits, small_pool
#include "procpool/error.hpp"
#include "procpool/pool.hpp"
#include "procpool/shared_array.hpp"

namespace procpool::test {
namespace {

PoolOptions with_counters(unsigned workers) {
  PoolOptions options = small_pool("regions", workers);
  options.regions = {{"counters", 4096}, {"flags", 64}};
  return options;
}

// The memfds this process holds for shared memory (regions and the pool's shared memory).
std::size_t shared_memfds() {
  std::size_t count = 0;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    std::error_code error;
    const std::string target = std::filesystem::read_symlink(entry.path(), error).string();
    if (!error && target.find("memfd:procpool-shared") != std::string::npos) ++count;
  }
  return count;
}

// SharedArrayBuffer's classic: the host writes 123, a worker fetch_adds 1, the host sees 124.
TEST(PoolRegions, TheHostWrites123AWorkerAddsOneAndTheHostSees124) {
  Watchdog watchdog(std::chrono::seconds(60));
  Pool pool(with_counters(1));
  SharedArray<std::uint64_t> counters(pool.region("counters"));
  EXPECT_EQ(counters.size(), 4096u / 8);
  counters.at(0).store(123);
  Future<std::string> added = pool.submit("add", "counters 0 1");
  EXPECT_EQ(value_of(added), "124");
  EXPECT_EQ(counters.at(0).load(), 124u);
}

// Every worker opens the same region: 2,000 increments from two workers add up.
TEST(PoolRegions, EveryWorkerOpensTheSameRegion) {
  Watchdog watchdog(std::chrono::seconds(60));
  Pool pool(with_counters(2));
  constexpr std::size_t kAdds = 2000;
  const std::vector<std::string_view> payloads(kAdds, "flags 3 1");
  Callbacks callbacks;
  pool.submit_batch("add", payloads, {}, [&](std::size_t, const TaskOutcome& o) {
    EXPECT_TRUE(o.ok()) << o.error()->what();
    callbacks.add();
  });
  callbacks.wait_for(kAdds);
  EXPECT_EQ(SharedArray<std::uint64_t>(pool.region("flags")).at(3).load(), kAdds);
  EXPECT_EQ(pool.metrics().workers.size(), 2u);
}

// A worker SIGKILLed right after its update: the update stays (the region is the pool's, not
// the worker's), the task fails as a crash (one attempt by default), and the replacement opens
// the same region.
TEST(PoolRegions, ARegionOutlivesAWorkerKilledAfterItsUpdate) {
  Watchdog watchdog(std::chrono::seconds(60));
  Pool pool(with_counters(1));
  SharedArray<std::uint64_t> counters(pool.region("counters"));
  counters.at(5).store(10);
  Future<std::string> died = pool.submit("add_then_die", "counters 5 1");
  EXPECT_EQ(kind_of(died), TaskError::Kind::WorkerCrashed);
  EXPECT_EQ(counters.at(5).load(), 11u);
  Future<std::string> seen = pool.submit("get", "counters 5");  // the replacement
  EXPECT_EQ(value_of(seen), "11");
  EXPECT_GE(pool.metrics().restarts, 1u);
}

TEST(PoolRegions, ARegionIsOwnerOnlyAndSealedInTheWorker) {
  Watchdog watchdog(std::chrono::seconds(60));
  Pool pool(with_counters(1));
  Future<std::string> counters = pool.submit("inspect", "counters");
  EXPECT_EQ(value_of(counters), "600 sealed");
  Future<std::string> flags = pool.submit("inspect", "flags");
  EXPECT_EQ(value_of(flags), "600 sealed");
}

TEST(PoolRegions, RegionsGoWithThePool) {
  Watchdog watchdog(std::chrono::seconds(60));
  const std::size_t before = shared_memfds();
  {
    Pool pool(with_counters(1));
    EXPECT_EQ(shared_memfds(), before + 2);
  }
  EXPECT_EQ(shared_memfds(), before);
}

TEST(PoolRegions, BadRegionsAndUnknownNamesGetClearErrors) {
  Watchdog watchdog(std::chrono::seconds(60));
  auto refused = [](std::vector<RegionSpec> regions, const std::string& expected) {
    PoolOptions options = small_pool("regions");
    options.regions = std::move(regions);
    try {
      Pool pool(options);
      ADD_FAILURE() << "accepted; expected: " << expected;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(expected), std::string::npos) << e.what();
    }
  };
  refused({{"a,b", 8}}, "region name \"a,b\" is not");
  refused({{"", 8}}, "region name \"\" is not");
  refused({{"same", 8}, {"same", 8}}, "region \"same\" is named twice");
  refused({{"empty", 0}}, "region \"empty\" has size 0");
  refused(std::vector<RegionSpec>(65, RegionSpec{"r", 8}), "more than 64 regions");

  Pool pool(with_counters(1));
  try {
    (void)pool.region("nope");
    ADD_FAILURE() << "an unknown region was found";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no region named \"nope\" (PoolOptions::regions has "
                                         "counters, flags)"),
              std::string::npos)
        << e.what();
  }
  Future<std::string> unknown = pool.submit("add", "nope 0 1");
  const std::optional<TaskError> error = error_of(unknown);
  ASSERT_TRUE(error);
  EXPECT_EQ(error->kind(), TaskError::Kind::HandlerError);
  EXPECT_NE(std::string(error->what()).find("no region named \"nope\""), std::string::npos)
      << error->what();
  Future<std::string> past = pool.submit("add", "flags 8 1");  // 64 bytes: 8 counters
  const std::optional<TaskError> beyond = error_of(past);
  ASSERT_TRUE(beyond);
  EXPECT_NE(std::string(beyond->what()).find("index 8 is past its 8 elements"), std::string::npos)
      << beyond->what();
}

}  // namespace
}  // namespace procpool::test
