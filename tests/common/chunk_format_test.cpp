// Tests of the chunk codec (chunk_format.hpp): round trips in both layouts, and every way a
// chunk written by a worker can be malformed, each refused without reading out of bounds.

#include "procpool/chunk_format.hpp"

#include <gtest/gtest.h>

#include <cstdint>      // std::uint32_t
#include <string>       // std::string
#include <string_view>  // std::string_view
#include <vector>       // std::vector

namespace procpool {
namespace {

std::vector<std::string> items_of(std::string_view chunk, bool& complete) {
  ChunkReader reader(chunk);
  std::vector<std::string> items;
  for (std::string_view item; reader.next(item);) items.emplace_back(item);
  complete = reader.complete();
  EXPECT_EQ(reader.malformed(), !complete);
  return items;
}

TEST(ChunkFormat, ItemsRoundTripIncludingEmptyOnes) {
  std::string chunk;
  ChunkWriter writer(chunk);
  writer.begin();
  for (std::string_view item : {std::string_view("1"), std::string_view(""),
                                std::string_view("three"), std::string_view("\0\1", 2)}) {
    writer.add(item);
  }
  EXPECT_EQ(writer.count(), 4u);
  EXPECT_EQ(chunk.size(), 4 + 4 * 4 + 1 + 0 + 5 + 2);
  bool complete = false;
  const auto items = items_of(chunk, complete);
  EXPECT_TRUE(complete);
  EXPECT_EQ(items, (std::vector<std::string>{"1", "", "three", std::string("\0\1", 2)}));
}

TEST(ChunkFormat, ResultsRoundTripWithCodesAndCountFailures) {
  std::string chunk;
  ChunkWriter writer(chunk);
  writer.begin();
  writer.add_result(0, "2");
  writer.add_result(1, "boom");
  writer.add_result(0, "");
  EXPECT_EQ(writer.count(), 3u);
  EXPECT_EQ(writer.failures(), 1u);
  ChunkReader reader(chunk);
  EXPECT_EQ(reader.count(), 3u);
  std::vector<std::pair<std::uint32_t, std::string>> results;
  std::uint32_t code = 0;
  for (std::string_view bytes; reader.next_result(code, bytes);) results.emplace_back(code, bytes);
  EXPECT_TRUE(reader.complete());
  EXPECT_EQ(results,
            (std::vector<std::pair<std::uint32_t, std::string>>{{0, "2"}, {1, "boom"}, {0, ""}}));
}

TEST(ChunkFormat, BeginStartsAnEmptyChunkAgain) {
  std::string chunk = "left over";
  ChunkWriter writer(chunk);
  writer.begin();
  bool complete = false;
  EXPECT_TRUE(items_of(chunk, complete).empty());
  EXPECT_TRUE(complete);
}

TEST(ChunkFormat, MalformedChunksAreRefused) {
  std::string good;
  ChunkWriter writer(good);
  writer.begin();
  writer.add("abc");
  writer.add("de");
  bool complete = true;

  items_of(std::string_view(good).substr(0, 3), complete);  // shorter than the count
  EXPECT_FALSE(complete);
  for (std::size_t cut = 4; cut < good.size(); ++cut) {  // truncated anywhere after it
    items_of(std::string_view(good).substr(0, cut), complete);
    EXPECT_FALSE(complete) << "cut at " << cut;
  }
  items_of(good + "x", complete);  // bytes left over
  EXPECT_FALSE(complete);

  std::string huge_length = good;
  const std::uint32_t length = 0xFFFFFFF0u;
  huge_length.replace(4, 4, reinterpret_cast<const char*>(&length), 4);
  const auto items = items_of(huge_length, complete);
  EXPECT_FALSE(complete);
  EXPECT_TRUE(items.empty());

  std::string more_announced = good;
  const std::uint32_t count = 3;
  more_announced.replace(0, 4, reinterpret_cast<const char*>(&count), 4);
  EXPECT_EQ(items_of(more_announced, complete).size(), 2u);
  EXPECT_FALSE(complete);
}

TEST(ChunkFormat, ResultsWithTruncatedCodeOrLengthAreRefused) {
  std::string good;
  ChunkWriter writer(good);
  writer.begin();
  writer.add_result(0, "xyz");
  for (std::size_t cut = 4; cut < good.size(); ++cut) {
    ChunkReader reader(std::string_view(good).substr(0, cut));
    std::uint32_t code = 0;
    std::string_view bytes;
    EXPECT_FALSE(reader.next_result(code, bytes)) << "cut at " << cut;
    EXPECT_TRUE(reader.malformed());
  }
}

}  // namespace
}  // namespace procpool
