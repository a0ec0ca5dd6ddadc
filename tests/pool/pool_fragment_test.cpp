// Payloads larger than half a ring travel in fragments, written as the reader frees room. Each
// side must be woken for that room; nothing may wait for a timer. The heartbeat interval (the
// supervisor thread's longest sleep while workers run) is made far longer than the bound here,
// so a round trip that waits for it fails instead of passing slowly.
#include <gtest/gtest.h>

#include <chrono>  // durations
#include <string>  // payloads

#include "pool_test_support.hpp"  // Watchdog, value_of, kBound
#include "procpool/pool.hpp"
#include "test_workers.hpp"  // small_pool

namespace procpool::test {
namespace {

using namespace std::chrono_literals;

PoolOptions without_timer_wake_ups() {
  PoolOptions options = small_pool("echo", 1);
  options.heartbeat_interval = 120s;  // no timer rescues a missed wake-up within the bound
  return options;
}

void round_trip(Pool& pool, std::size_t size) {
  std::string input(size, 'p');
  for (std::size_t i = 0; i < size; i += 4093) input[i] = static_cast<char>('a' + i % 26);
  auto echoed = pool.submit("echo", input);
  ASSERT_EQ(echoed.wait_for(kBound), std::future_status::ready) << size << " bytes";
  EXPECT_TRUE(echoed.get() == input) << size << " bytes";
}

TEST(PoolFragments, PayloadsAroundTheRingSizeNeedNoTimer) {
  const Watchdog watchdog(kBound * 4);
  PoolOptions options = without_timer_wake_ups();
  Pool pool(options);
  const std::size_t ring = options.ring_capacity;
  for (const std::size_t size :
       {ring / 2 - 64, ring / 2 + 1, ring - 1, ring, ring + 1, 2 * ring, 16 * ring}) {
    round_trip(pool, size);
  }
}

}  // namespace
}  // namespace procpool::test
