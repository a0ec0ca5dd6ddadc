// The ring between two processes sharing a real segment: a long stream with a checksum, and a
// producer SIGKILLed at random moments while writing.

#include <gtest/gtest.h>

#include <cstdio>   // std::printf
#include <cstdlib>  // std::getenv
#include <cstring>  // std::memcpy
#include <random>   // std::mt19937_64
#include <string>   // std::stoull

#include "child_process.hpp"
#include "procpool/segment.hpp"
#include "procpool/wait_strategy.hpp"
#include "test_timing.hpp"  // kThreadSanitizer

namespace procpool {
namespace {

using test::ChildProcess;
using namespace std::chrono_literals;

// ThreadSanitizer checks nothing in this file (one thread per process, and it cannot see the
// other process), while every instrumented record and every fork and exit of a process with
// TSan's shadow mappings costs several times more: the tsan run moves fewer records and kills
// fewer producers, to stay well inside the CTest timeout on a busy 2-core machine. The dev and
// asan runs keep the full counts.
using test::kThreadSanitizer;

// The random moments of a run come from one seed: random unless PROCPOOL_TEST_SEED gives it, and
// always reported with the test (in its XML properties and in every failure message), so a
// failing run can be replayed with the same kill points.
std::uint64_t test_seed() {
  if (const char* text = std::getenv("PROCPOOL_TEST_SEED"); text != nullptr && *text != '\0') {
    return std::stoull(text, nullptr, 0);
  }
  std::random_device device;
  return (std::uint64_t{device()} << 32) | device();
}

// A self-checking record: [seq u64][check u64][filler bytes derived from seq]. A reader can tell a
// complete record from a torn one without any other knowledge.
constexpr std::uint32_t kMinRecord = 16;

std::uint64_t check_word(std::uint64_t seq, std::uint32_t size) {
  return (seq * 0x9E3779B97F4A7C15ULL) ^ (std::uint64_t{size} << 48) ^ 0xA5A5A5A5ULL;
}
std::byte filler(std::uint64_t seq, std::size_t i) {
  return static_cast<std::byte>((seq + i * 31) & 0xFF);
}
std::uint32_t record_size_for(std::uint64_t seq, std::uint32_t max) {
  return kMinRecord + static_cast<std::uint32_t>((seq * 2654435761ULL) % (max - kMinRecord + 1));
}

void fill_record(std::span<std::byte> room, std::uint64_t seq) {
  const auto size = static_cast<std::uint32_t>(room.size());
  const std::uint64_t check = check_word(seq, size);
  std::memcpy(room.data(), &seq, 8);
  std::memcpy(room.data() + 8, &check, 8);
  for (std::size_t i = 16; i < size; ++i) room[i] = filler(seq, i);
}

// Returns an empty string if `record` is the complete record number `expected_seq`.
std::string verify_record(std::span<const std::byte> record, std::uint64_t expected_seq) {
  if (record.size() < kMinRecord) return "record too short: " + std::to_string(record.size());
  std::uint64_t seq, check;
  std::memcpy(&seq, record.data(), 8);
  std::memcpy(&check, record.data() + 8, 8);
  if (seq != expected_seq) {
    return "sequence " + std::to_string(seq) + ", expected " + std::to_string(expected_seq);
  }
  if (check != check_word(seq, static_cast<std::uint32_t>(record.size()))) return "bad check word";
  for (std::size_t i = 16; i < record.size(); ++i) {
    if (record[i] != filler(seq, i)) return "torn filler at byte " + std::to_string(i);
  }
  return {};
}

// The producer loop run by a child: writes records from `first_seq` on, publishing in batches,
// sleeping on `writable` when the ring is full. Returns when `count` are written (or never, if
// count == UINT64_MAX and it gets killed).
int produce(const Segment& segment, std::uint64_t first_seq, std::uint64_t count,
            std::uint32_t max_size) {
  RingWriter writer = segment.worker_writer();
  if (writer.fault() != RingFault::kNone) return 3;
  for (std::uint64_t seq = first_seq; seq - first_seq < count; ++seq) {
    const std::uint32_t size = record_size_for(seq, max_size);
    std::span<std::byte> room;
    for (;;) {
      const WriteStatus status = writer.try_reserve(size, room);
      if (status == WriteStatus::kOk) break;
      if (status != WriteStatus::kFull) return 4;
      writer.publish();
      if (wait_until(
              segment.to_supervisor().writable, [&] { return writer.can_reserve(size); },
              WaitPolicy{}, 30s) != WaitResult::kReady) {
        return 5;
      }
    }
    fill_record(room, seq);
    writer.commit(size);
    if ((seq & 15) == 15) writer.publish();
  }
  writer.publish();
  return 0;
}

TEST(RingProcess, TwoProcessesMoveTenMillionRecordsWithChecksum) {
  constexpr std::uint64_t kRecords = kThreadSanitizer ? 2'000'000 : 10'000'000;
  SegmentConfig config;
  config.to_supervisor_capacity = 64 * 1024;
  Segment segment = Segment::create(config, 1);
  ChildProcess producer = ChildProcess::fork([&] { return produce(segment, 0, kRecords, 40); });
  ASSERT_TRUE(producer.started());

  RingReader reader = segment.supervisor_reader();
  std::uint64_t received = 0, sum = 0;
  while (received < kRecords) {
    std::span<const std::byte> record;
    const ReadStatus status = reader.try_read(record);
    if (status == ReadStatus::kEmpty) {
      reader.release();
      ASSERT_EQ(
          wait_until(
              segment.to_supervisor().readable, [&] { return reader.poll(); }, WaitPolicy{}, 20s),
          WaitResult::kReady)
          << "no record for 20 s after " << received;
      continue;
    }
    ASSERT_EQ(status, ReadStatus::kOk) << to_string(reader.fault());
    const std::string problem = verify_record(record, received);
    ASSERT_TRUE(problem.empty()) << problem;
    std::uint64_t check;
    std::memcpy(&check, record.data() + 8, 8);
    sum += check;
    ++received;
    if ((received & 127) == 0) reader.release();
  }
  reader.release();
  std::uint64_t expected_sum = 0;
  for (std::uint64_t seq = 0; seq < kRecords; ++seq) {
    expected_sum += check_word(seq, record_size_for(seq, 40));
  }
  EXPECT_EQ(sum, expected_sum);
  EXPECT_TRUE(producer.exited_cleanly(10s));
}

// 120 producers (30 under TSan) in a row are SIGKILLed at random moments, almost always in the
// middle of writing a record or a batch. Each time the reader must find only complete records,
// in sequence, and the next producer must carry on in the same ring from the last published
// position.
TEST(RingProcess, ProducerKilledWhileWritingLeavesOnlyCompleteRecords) {
  constexpr int kKills = kThreadSanitizer ? 30 : 120;
  SegmentConfig config;
  config.to_supervisor_capacity = 4096;  // small: many wraps and many full-ring waits
  Segment segment = Segment::create(config, 1);
  RingReader reader = segment.supervisor_reader();
  const std::uint64_t seed = test_seed();
  ::testing::Test::RecordProperty("seed", std::to_string(seed));
  std::printf("seed %llu (replay with PROCPOOL_TEST_SEED=%llu)\n",
              static_cast<unsigned long long>(seed), static_cast<unsigned long long>(seed));
  std::fflush(stdout);  // before a hang or a crash, too
  SCOPED_TRACE("seed " + std::to_string(seed) +
               " (replay with PROCPOOL_TEST_SEED=" + std::to_string(seed) + ")");
  std::mt19937_64 rng(seed);
  std::uint64_t next_seq = 0;
  std::uint64_t torn_seen = 0;

  auto read_available = [&]() -> std::string {
    std::span<const std::byte> record;
    ReadStatus status;
    while ((status = reader.try_read(record)) == ReadStatus::kOk) {
      std::string problem = verify_record(record, next_seq);
      if (!problem.empty()) return problem;
      ++next_seq;
    }
    reader.release();
    if (status == ReadStatus::kCorrupt) return std::string(to_string(reader.fault()));
    return {};
  };

  for (int kill = 0; kill < kKills; ++kill) {
    const std::uint64_t first = next_seq;
    ChildProcess producer = ChildProcess::fork(
        [&] { return produce(segment, first, UINT64_MAX, reader.max_payload()); });
    ASSERT_TRUE(producer.started());
    // Let it run until it has produced a random number of records, then kill it after a random
    // extra spin: the kill lands at an arbitrary instruction of the write loop.
    const std::uint64_t target = first + 1 + rng() % 3000;
    while (next_seq < target) {
      ASSERT_EQ(
          wait_until(
              segment.to_supervisor().readable, [&] { return reader.poll(); }, WaitPolicy{}, 20s),
          WaitResult::kReady)
          << "producer " << kill << " produced nothing for 20 s";
      const std::string problem = read_available();
      ASSERT_TRUE(problem.empty()) << "before kill " << kill << ": " << problem;
    }
    const auto spin_until =
        std::chrono::steady_clock::now() + std::chrono::microseconds(rng() % 200);
    while (std::chrono::steady_clock::now() < spin_until) cpu_relax();
    producer.kill(SIGKILL);
    const auto status = producer.wait_for_exit(10s);
    ASSERT_TRUE(status.has_value());
    ASSERT_TRUE(WIFSIGNALED(*status) && WTERMSIG(*status) == SIGKILL)
        << "producer " << kill << " exited by itself: status " << *status;
    // Everything the dead producer published is complete and in order; its unpublished tail is
    // simply gone, and the next producer starts from the published position.
    const std::string problem = read_available();
    ASSERT_TRUE(problem.empty()) << "after kill " << kill << ": " << problem;
    torn_seen +=
        segment.to_supervisor().write_pos.load() != segment.to_supervisor().read_pos.load();
  }
  EXPECT_EQ(torn_seen, 0U) << "reader did not reach the published end after a kill";
  // The ring still works end to end.
  ChildProcess last = ChildProcess::fork([&] { return produce(segment, next_seq, 1000, 64); });
  const std::uint64_t end = next_seq + 1000;
  while (next_seq < end) {
    ASSERT_EQ(
        wait_until(
            segment.to_supervisor().readable, [&] { return reader.poll(); }, WaitPolicy{}, 20s),
        WaitResult::kReady);
    const std::string problem = read_available();
    ASSERT_TRUE(problem.empty()) << problem;
  }
  EXPECT_TRUE(last.exited_cleanly(10s));
}

}  // namespace
}  // namespace procpool
