// Tests of PoolOptions::shared_memory_size: one region the supervisor and every worker map,
// across worker restarts; tasks name ranges of it instead of carrying the bytes (the checksum
// worker's "checksum_shared" and "fill_shared"). Every wait is bounded (pool_test_support.hpp).

#include <gtest/gtest.h>

#include <cstddef>  // std::byte
#include <cstdint>  // std::uint64_t
#include <cstring>  // std::memcpy
#include <future>   // std::promise
#include <memory>   // std::make_shared
#include <mutex>    // std::mutex
#include <set>      // std::set
#include <string>   // std::string
#include <vector>   // std::vector

#include "pool_test_support.hpp"  // Watchdog, Callbacks, directory_entries, poll_until
#include "procpool/pool.hpp"
#include "test_workers.hpp"

namespace procpool::test {
namespace {

using namespace std::chrono_literals;

class PoolSharedMemory : public ::testing::Test {
 protected:
  Watchdog watchdog_{50s};
};

constexpr std::uint64_t kSize = 1 << 20;

PoolOptions shared_pool(unsigned workers) {
  PoolOptions options = small_pool("checksum", workers);
  options.shared_memory_size = kSize;
  return options;
}

std::string local_checksum(std::span<const std::byte> bytes) {
  std::uint64_t sum = 0;
  for (std::size_t i = 0; i + 8 <= bytes.size(); i += 8) {
    std::uint64_t word;
    std::memcpy(&word, bytes.data() + i, 8);
    sum += word;
  }
  return std::to_string(sum);
}

std::string range(std::uint64_t offset, std::uint64_t length) {
  return std::to_string(offset) + " " + std::to_string(length);
}

// Both workers must serve: the batch is queued whole and dispatched to the least-loaded ready
// worker each time, so with both ready its first two tasks go to different workers. The pid
// that answered each task is the one that read the region.
TEST_F(PoolSharedMemory, EveryWorkerReadsWhatTheSupervisorWroteInPlace) {
  Pool pool(shared_pool(2));
  std::span<std::byte> shared = pool.shared_memory();
  ASSERT_EQ(shared.size(), kSize);
  for (std::size_t j = 0; j < shared.size(); ++j)
    shared[j] = std::byte(static_cast<unsigned char>((7 * j + 3) % 256));
  ASSERT_TRUE(poll_until([&] {
    const PoolMetrics m = pool.metrics();
    return m.workers.size() == 2 && m.workers[0].state == WorkerMetrics::State::Ready &&
           m.workers[1].state == WorkerMetrics::State::Ready;
  })) << "the two workers did not become ready";
  std::set<int> live;
  for (const WorkerMetrics& worker : pool.metrics().workers) live.insert(worker.pid);

  constexpr std::size_t kTasks = 8;  // different ranges
  std::vector<std::string> inputs;
  for (std::size_t i = 0; i < kTasks; ++i) {
    const std::uint64_t offset = 4096 * static_cast<std::uint64_t>(i);
    inputs.push_back(range(offset, kSize - offset));
  }
  const std::vector<std::string_view> payloads(inputs.begin(), inputs.end());
  std::mutex mu;
  std::vector<std::string> answers(kTasks);
  std::vector<int> served_by(kTasks, 0);
  Callbacks done;
  pool.submit_batch("checksum_shared", payloads, {}, [&](std::size_t i, const TaskOutcome& o) {
    {
      const std::lock_guard lock(mu);
      answers[i] = o.ok() ? std::string(o.value()) : o.error()->what();
      served_by[i] = o.worker_pid();
    }
    done.add();
  });
  done.wait_for(kTasks);
  std::set<int> served;
  const std::lock_guard lock(mu);
  for (std::size_t i = 0; i < kTasks; ++i) {
    const std::uint64_t offset = 4096 * static_cast<std::uint64_t>(i);
    EXPECT_EQ(answers[i], local_checksum(shared.subspan(offset, kSize - offset))) << i;
    served.insert(served_by[i]);
  }
  EXPECT_EQ(served, live) << "not every worker read the region";
  EXPECT_EQ(served.size(), 2u);
}

TEST_F(PoolSharedMemory, TheSupervisorSeesWhatAWorkerWrote) {
  Pool pool(shared_pool(1));
  auto filled = pool.submit("fill_shared", "1000 24 171");
  ASSERT_EQ(value_of(filled), "filled");
  std::span<std::byte> shared = pool.shared_memory();
  EXPECT_EQ(shared[999], std::byte{0});
  for (std::size_t j = 1000; j < 1024; ++j) ASSERT_EQ(shared[j], std::byte{171}) << j;
  EXPECT_EQ(shared[1024], std::byte{0});
}

TEST_F(PoolSharedMemory, TheRegionOutlivesTheWorkersThatWroteIt) {
  PoolOptions options = shared_pool(1);
  options.max_tasks_per_worker = 1;  // every task in a new worker process
  Pool pool(options);
  std::set<int> writers;  // the pid that answered each fill
  for (int i = 0; i < 3; ++i) {
    auto answered = std::make_shared<std::promise<std::pair<std::string, int>>>();
    auto result = answered->get_future();
    pool.submit("fill_shared",
                range(8 * static_cast<std::uint64_t>(i), 8) + " " + std::to_string(i + 1), {},
                [answered](const TaskOutcome& o) {
                  answered->set_value(
                      {o.ok() ? std::string(o.value()) : o.error()->what(), o.worker_pid()});
                });
    ASSERT_EQ(result.wait_for(kBound), std::future_status::ready);
    const auto [text, pid] = result.get();
    ASSERT_EQ(text, "filled");
    writers.insert(pid);
  }
  EXPECT_EQ(writers.size(), 3u);  // three processes wrote
  // Later workers (recycled after one task each) still see every earlier worker's bytes.
  auto sum = pool.submit("checksum_shared", range(0, 24));
  EXPECT_EQ(value_of(sum), local_checksum(pool.shared_memory().subspan(0, 24)));
  EXPECT_EQ(pool.shared_memory()[0], std::byte{1});
  EXPECT_EQ(pool.shared_memory()[8], std::byte{2});
  EXPECT_EQ(pool.shared_memory()[16], std::byte{3});
}

TEST_F(PoolSharedMemory, ARangeOutsideTheRegionIsAHandlerErrorNotACrash) {
  Pool pool(shared_pool(1));
  auto outside = pool.submit("checksum_shared", range(kSize - 8, 16));
  const auto error = error_of(outside);
  ASSERT_TRUE(error);
  EXPECT_EQ(error->kind(), TaskError::Kind::HandlerError);
  EXPECT_NE(std::string(error->what()).find("outside the shared memory"), std::string::npos)
      << error->what();
  auto inside = pool.submit("checksum_shared", range(0, 8));
  EXPECT_EQ(value_of(inside), "0");  // zero-filled
}

TEST_F(PoolSharedMemory, NoneByDefaultAndNothingInDevShm) {
  const std::set<std::string> shm_before = directory_entries("/dev/shm");
  {
    Pool pool(small_pool("checksum", 1));
    EXPECT_TRUE(pool.shared_memory().empty());
    auto none = pool.submit("checksum_shared", range(0, 8));
    const auto error = error_of(none);
    ASSERT_TRUE(error);
    EXPECT_NE(std::string(error->what()).find("(0 bytes)"), std::string::npos) << error->what();
    Pool with(shared_pool(1));
    EXPECT_EQ(directory_entries("/dev/shm"), shm_before);  // a memfd has no name there
  }
  EXPECT_EQ(directory_entries("/dev/shm"), shm_before);
}

}  // namespace
}  // namespace procpool::test
