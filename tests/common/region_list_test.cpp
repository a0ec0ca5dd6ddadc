// The named regions' environment list (region_list.hpp) and the typed view over a region
// (shared_array.hpp).

#include <gtest/gtest.h>

#include <cstddef>  // std::byte
#include <cstdint>  // std::uint64_t
#include <string>   // lists
#include <vector>   // buffers

#include "procpool/error.hpp"
#include "procpool/region_list.hpp"
#include "procpool/shared_array.hpp"

namespace procpool {
namespace {

TEST(RegionList, RoundTrips) {
  const RegionFds regions = {{"counters", 5}, {"a.b-c_D9", 123}};
  const std::string text = encode_region_list(regions);
  EXPECT_EQ(text, "counters=5,a.b-c_D9=123");
  RegionFds decoded;
  ASSERT_TRUE(decode_region_list(text, decoded));
  EXPECT_EQ(decoded, regions);
  ASSERT_TRUE(decode_region_list("", decoded));
  EXPECT_TRUE(decoded.empty());
}

TEST(RegionList, RefusesAnythingElse) {
  RegionFds decoded;
  for (const char* bad : {"counters", "counters=", "=5", "a=5,", ",a=5", "a=5,a=6", "a=-1", "a=5x",
                          "a b=5", "a=99999999999", "a=5,,b=6"}) {
    EXPECT_FALSE(decode_region_list(bad, decoded)) << bad;
  }
  std::string many;
  for (std::size_t i = 0; i <= kMaxRegions; ++i) {
    many += (i == 0 ? "" : ",") + std::string("r") + std::to_string(i) + "=3";
  }
  EXPECT_FALSE(decode_region_list(many, decoded));
  EXPECT_FALSE(valid_region_name(std::string(kMaxRegionName + 1, 'x')));
  EXPECT_TRUE(valid_region_name(std::string(kMaxRegionName, 'x')));
}

TEST(SharedArray, ViewsAlignedBytesAsAtomicsAndChecksBounds) {
  alignas(8) std::byte bytes[24] = {};
  SharedArray<std::uint64_t> view(bytes);
  EXPECT_EQ(view.size(), 3u);
  view.at(2).store(123);
  EXPECT_EQ(view.at(2).fetch_add(1), 123u);
  EXPECT_EQ(view.at(2).load(), 124u);
  EXPECT_THROW((void)view.at(3), Error);
  EXPECT_THROW(SharedArray<std::uint64_t>(std::span<std::byte>(bytes + 4, 16)), Error);
  SharedArray<std::uint32_t> flags(std::span<std::byte>(bytes + 4, 7));  // a partial element
  EXPECT_EQ(flags.size(), 1u);
}

}  // namespace
}  // namespace procpool
