// TaskTable (supervisor/pool/task_table.hpp): ids name a record and its reuse, so a stale id
// never matches a later occupant; freed records are reused, and huge payload buffers given back.
#include "task_table.hpp"

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace procpool::detail {
namespace {

TEST(TaskTable, IdsNameTheirRecordAndAreHeldUntilFreed) {
  TaskTable table;
  std::set<std::uint64_t> ids;
  for (std::uint32_t k = 0; k < 3; ++k) {
    const std::uint32_t index = table.allocate();
    const std::uint64_t id = table[index].id;
    EXPECT_NE(id, 0u);
    EXPECT_EQ(TaskTable::index_of(id), index);
    EXPECT_TRUE(table.holds(id));
    ids.insert(id);
  }
  EXPECT_EQ(ids.size(), 3u);
  EXPECT_EQ(table.size(), 3u);
  EXPECT_FALSE(table.holds(0));
  EXPECT_FALSE(table.holds(std::uint64_t{1} << 32 | 7));  // an index never allocated
}

TEST(TaskTable, AStaleIdNeverMatchesTheRecordsNextOccupant) {
  TaskTable table;
  const std::uint32_t index = table.allocate();
  const std::uint64_t first = table[index].id;
  table.free(index);
  EXPECT_FALSE(table.holds(first));
  EXPECT_EQ(table[index].id, 0u);

  const std::uint32_t again = table.allocate();
  EXPECT_EQ(again, index);  // reused, nothing new allocated
  EXPECT_EQ(table.size(), 1u);
  const std::uint64_t second = table[again].id;
  EXPECT_NE(second, first);
  EXPECT_EQ(TaskTable::index_of(second), index);
  EXPECT_TRUE(table.holds(second));
  EXPECT_FALSE(table.holds(first));
}

TEST(TaskTable, FreedRecordsAreReusedLastInFirstOut) {
  TaskTable table;
  const std::uint32_t a = table.allocate();
  const std::uint32_t b = table.allocate();
  table.free(a);
  table.free(b);
  EXPECT_EQ(table.allocate(), b);
  EXPECT_EQ(table.allocate(), a);
  EXPECT_EQ(table.size(), 2u);
}

TEST(TaskTable, FreeClearsTheFlightStateAndGivesBackHugePayloadBuffers) {
  TaskTable table;
  const std::uint32_t small = table.allocate();
  const std::uint32_t huge = table.allocate();
  table[small].payload.assign(100, 'x');
  table[huge].payload.assign(TaskTable::kKeptPayloadCapacity + 1, 'x');
  table[small].slot = 3;
  table[small].abandoned = true;
  const std::size_t small_capacity = table[small].payload.capacity();
  table.free(small);
  table.free(huge);
  EXPECT_EQ(table[small].slot, -1);
  EXPECT_FALSE(table[small].abandoned);
  EXPECT_EQ(table[small].payload.capacity(), small_capacity);  // kept: no allocation once warm
  EXPECT_LE(table[huge].payload.capacity(), TaskTable::kKeptPayloadCapacity);
}

// A huge buffer leaves its record, but the largest one freed waits aside for the next large
// payload, whichever record stores it; smaller ones are given back.
TEST(TaskTable, TheLargestFreedPayloadBufferServesTheNextLargePayload) {
  TaskTable table;
  constexpr std::size_t kHuge = 4 * TaskTable::kKeptPayloadCapacity;
  const std::uint32_t a = table.allocate();
  const std::uint32_t b = table.allocate();
  table.store_payload(a, std::string(kHuge, 'a'));
  table.store_payload(b, std::string(kHuge / 2, 'b'));
  const char* largest = table[a].payload.data();
  table.free(a);
  table.free(b);
  EXPECT_LE(table[a].payload.capacity(), TaskTable::kKeptPayloadCapacity);
  EXPECT_LE(table[b].payload.capacity(), TaskTable::kKeptPayloadCapacity);
  const std::uint32_t c = table.allocate();
  table.store_payload(c, std::string(kHuge - 1, 'c'));
  EXPECT_EQ(table[c].payload.data(), largest);
  EXPECT_EQ(table[c].payload, std::string(kHuge - 1, 'c'));
  const std::uint32_t d = table.allocate();  // nothing aside any more: a buffer of its own
  table.store_payload(d, std::string(kHuge, 'd'));
  EXPECT_NE(table[d].payload.data(), largest);
  EXPECT_EQ(table[d].payload.size(), kHuge);
}

}  // namespace
}  // namespace procpool::detail
