// TaskTable (supervisor/pool/task_table.hpp): ids name a record and its reuse, so a stale id
// never matches a later occupant; freed records are reused, and huge payload buffers given back.
#include "task_table.hpp"

#include <gtest/gtest.h>

#include <set>

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

}  // namespace
}  // namespace procpool::detail
