// The typed option values (common/option_values.hpp) through Boost.Program_options as the
// commands use it: a good value arrives typed, a bad one fails in po::store() naming the option.

#include "common/option_values.hpp"

#include <cstdint>  // std::uint64_t
#include <string>   // messages
#include <utility>  // std::pair
#include <vector>   // arguments

#include <gtest/gtest.h>
#include <boost/program_options.hpp>

#include "common/usage.hpp"

namespace {

namespace po = boost::program_options;
using procpool::tool::ByteSize;
using procpool::tool::Count;
using procpool::tool::Duration;
using procpool::tool::WorkerCount;
using Ten = Count<0, 10>;  // a macro argument cannot hold the comma of Count<0, 10>

po::variables_map parse(const std::vector<std::string>& args) {
  po::options_description options;
  options.add_options()                       //
      ("count", po::value<Ten>())             //
      ("size", po::value<ByteSize>())         //
      ("time", po::value<Duration>())         //
      ("workers", po::value<WorkerCount>());  //
  po::variables_map values;
  po::store(
      po::command_line_parser(args).options(options).style(procpool::tool::kOptionStyle).run(),
      values);
  return values;
}

// The po::error message of a parse that must fail, or "" if it did not.
std::string error_of(const std::vector<std::string>& args) {
  try {
    parse(args);
  } catch (const po::error& e) {
    return e.what();
  }
  return "";
}

TEST(ToolOptionValues, GoodValuesArriveTyped) {
  const po::variables_map values = parse({"--count", "10", "--time", "1.5m", "--workers", "7"});
  EXPECT_EQ(values["count"].as<Ten>().value, 10u);
  EXPECT_EQ(values["time"].as<Duration>().value, std::chrono::milliseconds(90000));
  EXPECT_EQ(values["workers"].as<WorkerCount>().value, 7u);
}

TEST(ToolOptionValues, WorkersAutoIsTheCpuCount) {
  EXPECT_EQ(parse({"--workers", "auto"})["workers"].as<WorkerCount>().value,
            procpool::tool::cpu_count());
  EXPECT_GE(procpool::tool::cpu_count(), 1u);
}

// A plain po::value<unsigned> would take "-1" as 4294967295 and "+3" as 3.
TEST(ToolOptionValues, CountRefusesSignsFractionsTextAndOutOfRange) {
  for (const char* bad : {"-1", "+3", "1.5", "1x", "", "11"}) {
    EXPECT_EQ(error_of({"--count", bad}),
              std::string("invalid --count '") + bad + "': expected a whole number, 0 to 10")
        << bad;
  }
}

TEST(ToolOptionValues, BadDurationsAndWorkerCountsNameTheOption) {
  EXPECT_EQ(error_of({"--time", "-2s"}),
            "invalid --time '-2s': expected a duration such as 500ms, 2s or 1m (a plain number is "
            "seconds)");
  for (const char* bad : {"0", "1025", "Auto"}) {
    EXPECT_EQ(error_of({"--workers", bad}),
              std::string("invalid --workers '") + bad +
                  "': expected a whole number, 1 to 1024, or auto (the number of CPUs)")
        << bad;
  }
}

TEST(ToolOptionValues, ByteSizesArePowersOf1024) {
  for (const auto& [text, bytes] : {std::pair<const char*, std::uint64_t>{"0", 0},
                                    {"4096", 4096},
                                    {"512K", 512ull << 10},
                                    {"512k", 512ull << 10},
                                    {"64M", 64ull << 20},
                                    {"1G", 1ull << 30},
                                    {"2t", 2ull << 40}}) {
    EXPECT_EQ(parse({"--size", text})["size"].as<ByteSize>().value, bytes) << text;
  }
  EXPECT_EQ(parse({"--size", "18446744073709551615"})["size"].as<ByteSize>().value,
            ~std::uint64_t{0});
}

// A fraction, a sign, an unknown or doubled unit, and anything above 2^64 - 1 bytes.
TEST(ToolOptionValues, ByteSizeRefusesWhatItCannotHoldExactly) {
  for (const char* bad :
       {"", "1.5G", "-1", "+1", "1KB", "1X", "K", " 1K", "16777216T", "18446744073709551616"}) {
    EXPECT_EQ(error_of({"--size", bad}),
              std::string("invalid --size '") + bad +
                  "': expected a size such as 512K, 64M or 1G (powers of 1024; a plain number is "
                  "bytes)")
        << bad;
  }
}

TEST(ToolOptionValues, RepeatedValueIsRefused) {
  EXPECT_EQ(error_of({"--time", "1s", "--time", "2s"}),
            "option '--time' cannot be specified more than once");
}

}  // namespace
