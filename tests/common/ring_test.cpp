// Single-process behaviour of the ring views: empty, full, wrap, maximum record, batch publish,
// and a two-thread stream with a checksum.

#include <gtest/gtest.h>

#include <cstring>     // std::memcpy
#include <deque>       // std::deque (the model in the randomized test)
#include <random>      // std::mt19937_64
#include <stop_token>  // std::stop_callback
#include <string>      // std::string
#include <thread>      // std::jthread

#include "local_ring.hpp"
#include "procpool/wait_strategy.hpp"

namespace procpool {
namespace {

using test::LocalRing;

std::span<const std::byte> bytes_of(const std::string& s) {
  return std::as_bytes(std::span<const char>(s.data(), s.size()));
}
std::string string_of(std::span<const std::byte> record) {
  return std::string(reinterpret_cast<const char*>(record.data()), record.size());
}

TEST(Ring, FreshRingIsEmpty) {
  LocalRing ring(1024);
  RingReader reader = ring.reader();
  std::span<const std::byte> record;
  EXPECT_EQ(reader.try_read(record), ReadStatus::kEmpty);
  EXPECT_FALSE(reader.poll());
  EXPECT_EQ(reader.fault(), RingFault::kNone);
}

TEST(Ring, RecordIsInvisibleUntilPublished) {
  LocalRing ring(1024);
  RingWriter writer = ring.writer();
  RingReader reader = ring.reader();
  ASSERT_EQ(writer.try_write(bytes_of("hello")), WriteStatus::kOk);
  std::span<const std::byte> record;
  EXPECT_EQ(reader.try_read(record), ReadStatus::kEmpty);
  EXPECT_TRUE(writer.has_unpublished());
  writer.publish();
  EXPECT_FALSE(writer.has_unpublished());
  ASSERT_EQ(reader.try_read(record), ReadStatus::kOk);
  EXPECT_EQ(string_of(record), "hello");
  EXPECT_EQ(reader.try_read(record), ReadStatus::kEmpty);
}

TEST(Ring, ZeroLengthRecordRoundTrips) {
  LocalRing ring(256);
  RingWriter writer = ring.writer();
  RingReader reader = ring.reader();
  ASSERT_EQ(writer.try_write({}), WriteStatus::kOk);
  writer.publish();
  std::span<const std::byte> record;
  ASSERT_EQ(reader.try_read(record), ReadStatus::kOk);
  EXPECT_TRUE(record.empty());
}

TEST(Ring, CommitMayUseLessThanReserved) {
  LocalRing ring(256);
  RingWriter writer = ring.writer();
  RingReader reader = ring.reader();
  std::span<std::byte> room;
  ASSERT_EQ(writer.try_reserve(64, room), WriteStatus::kOk);
  std::memcpy(room.data(), "abc", 3);
  writer.commit(3);
  writer.publish();
  std::span<const std::byte> record;
  ASSERT_EQ(reader.try_read(record), ReadStatus::kOk);
  EXPECT_EQ(string_of(record), "abc");
  EXPECT_EQ(ring.data().write_pos.load(), ring_record_footprint(3));
}

TEST(Ring, FullRingRefusesUntilReaderReleases) {
  LocalRing ring(256);
  RingWriter writer = ring.writer();
  RingReader reader = ring.reader();
  const std::string payload(24, 'x');  // footprint 32: 8 records fill 256 bytes
  int written = 0;
  while (writer.try_write(bytes_of(payload)) == WriteStatus::kOk) ++written;
  EXPECT_EQ(written, 8);
  EXPECT_EQ(writer.try_write(bytes_of(payload)), WriteStatus::kFull);
  EXPECT_FALSE(writer.can_reserve(24));
  writer.publish();
  std::span<const std::byte> record;
  ASSERT_EQ(reader.try_read(record), ReadStatus::kOk);
  // Read but not released: the bytes are still the reader's.
  EXPECT_EQ(writer.try_write(bytes_of(payload)), WriteStatus::kFull);
  reader.release();
  EXPECT_TRUE(writer.can_reserve(24));
  EXPECT_EQ(writer.try_write(bytes_of(payload)), WriteStatus::kOk);
}

TEST(Ring, MaximumRecordFitsAndOneMoreByteIsTooLarge) {
  LocalRing ring(1024);
  RingWriter writer = ring.writer();
  RingReader reader = ring.reader();
  const std::uint32_t max = writer.max_payload();
  EXPECT_EQ(max, 1024 / 2 - 8);
  std::span<std::byte> room;
  EXPECT_EQ(writer.try_reserve(max + 1, room), WriteStatus::kTooLarge);
  EXPECT_EQ(writer.try_write(bytes_of(std::string(max + 1, 'z'))), WriteStatus::kTooLarge);
  // A maximum record fits wherever the ring stands once it is empty, padding included.
  for (int round = 0; round < 10; ++round) {
    const std::string small(static_cast<std::size_t>(8 * round + 1), 's');
    ASSERT_EQ(writer.try_write(bytes_of(small)), WriteStatus::kOk);
    const std::string big(max, static_cast<char>('a' + round));
    ASSERT_EQ(writer.try_write(bytes_of(big)), WriteStatus::kOk) << "round " << round;
    writer.publish();
    std::span<const std::byte> record;
    ASSERT_EQ(reader.try_read(record), ReadStatus::kOk);
    EXPECT_EQ(string_of(record), small);
    ASSERT_EQ(reader.try_read(record), ReadStatus::kOk);
    EXPECT_EQ(string_of(record), big);
    reader.release();
  }
}

TEST(Ring, RecordsNeverStraddleTheWrap) {
  LocalRing ring(512);
  RingWriter writer = ring.writer();
  RingReader reader = ring.reader();
  // Two records of footprint 200 leave 112 bytes at the tail; the next record needs 128 and must
  // start at offset 0 behind a padding record.
  std::span<const std::byte> record;
  for (int i = 0; i < 2; ++i) {
    ASSERT_EQ(writer.try_write(bytes_of(std::string(192, 'a'))), WriteStatus::kOk);
  }
  writer.publish();
  for (int i = 0; i < 2; ++i) ASSERT_EQ(reader.try_read(record), ReadStatus::kOk);
  reader.release();
  const std::string third(120, 'b');
  ASSERT_EQ(writer.try_write(bytes_of(third)), WriteStatus::kOk);
  writer.publish();
  ASSERT_EQ(reader.try_read(record), ReadStatus::kOk);
  EXPECT_EQ(record.data(), ring.bytes().data() + kRecordHeaderSize) << "record not at offset 0";
  EXPECT_EQ(string_of(record), third);
  EXPECT_EQ(ring.data().write_pos.load(), 512U + ring_record_footprint(120));
}

TEST(Ring, BatchPublishIsOneStoreForManyRecords) {
  LocalRing ring(4096);
  RingWriter writer = ring.writer();
  RingReader reader = ring.reader();
  for (int i = 0; i < 100; ++i) {
    ASSERT_EQ(writer.try_write(bytes_of(std::to_string(i))), WriteStatus::kOk);
  }
  EXPECT_EQ(ring.data().write_pos.load(), 0U) << "nothing visible before publish()";
  writer.publish();
  std::span<const std::byte> record;
  for (int i = 0; i < 100; ++i) {
    ASSERT_EQ(reader.try_read(record), ReadStatus::kOk);
    EXPECT_EQ(string_of(record), std::to_string(i));
  }
  EXPECT_EQ(reader.try_read(record), ReadStatus::kEmpty);
  EXPECT_EQ(ring.data().read_pos.load(), 0U) << "nothing handed back before release()";
  reader.release();
  EXPECT_EQ(ring.data().read_pos.load(), ring.data().write_pos.load());
}

// Random record sizes, random batch sizes, random read/release interleavings, against a queue
// model: every record comes out once, in order, intact, across thousands of wraps.
TEST(Ring, RandomizedOperationsMatchAQueueModel) {
  LocalRing ring(512);
  RingWriter writer = ring.writer();
  RingReader reader = ring.reader();
  std::mt19937_64 rng(12345);
  std::deque<std::string> published, committed, read_unreleased;
  std::uint64_t next = 0;
  for (int step = 0; step < 200'000; ++step) {
    switch (rng() % 4) {
      case 0: {  // write one record of random size
        const std::size_t size = rng() % (writer.max_payload() + 1);
        std::string payload(size, static_cast<char>('A' + next % 26));
        if (size >= 8) std::memcpy(payload.data(), &next, 8);
        const WriteStatus status = writer.try_write(bytes_of(payload));
        ASSERT_NE(status, WriteStatus::kCorrupt);
        ASSERT_NE(status, WriteStatus::kTooLarge);
        if (status == WriteStatus::kOk) {
          committed.push_back(payload);
          ++next;
        }
        break;
      }
      case 1:
        writer.publish();
        for (auto& p : committed) published.push_back(std::move(p));
        committed.clear();
        break;
      case 2: {
        std::span<const std::byte> record;
        const ReadStatus status = reader.try_read(record);
        ASSERT_NE(status, ReadStatus::kCorrupt) << to_string(reader.fault());
        if (published.empty()) {
          ASSERT_EQ(status, ReadStatus::kEmpty);
        } else {
          ASSERT_EQ(status, ReadStatus::kOk);
          ASSERT_EQ(string_of(record), published.front());
          published.pop_front();
        }
        break;
      }
      case 3:
        reader.release();
        break;
    }
  }
  EXPECT_GT(next, 10'000U);
  EXPECT_GT(ring.data().write_pos.load(), 100 * ring.bytes().size()) << "few wraps";
}

// One producer thread, one consumer thread, 10 million records of 8..72 bytes, both sides
// sleeping on the eventcounts when they must; the consumer checks order and a running checksum.
TEST(Ring, TwoThreadsMoveTenMillionRecordsWithChecksum) {
  constexpr std::uint64_t kRecords = 10'000'000;
  constexpr auto kBound = std::chrono::seconds(20);  // per wait: a lost wake-up fails the test
  LocalRing ring(64 * 1024);
  std::uint64_t sent_sum = 0;
  bool producer_ok = true;
  // A failed ASSERT below returns early: the jthread then asks the producer to stop and joins
  // it, instead of std::terminate on a joinable thread.
  std::jthread producer([&](std::stop_token stop) {
    const std::stop_callback wake(stop, [&] { ring.data().writable.notify(); });
    RingWriter writer = ring.writer();
    for (std::uint64_t i = 0; i < kRecords && !stop.stop_requested(); ++i) {
      const std::uint32_t size = 8 + static_cast<std::uint32_t>((i * 7) % 65);
      std::span<std::byte> room;
      while (writer.try_reserve(size, room) == WriteStatus::kFull) {
        writer.publish();
        const auto room_or_stop = [&] { return stop.stop_requested() || writer.can_reserve(size); };
        if (wait_until(ring.data().writable, room_or_stop, WaitPolicy{}, kBound) ==
                WaitResult::kTimedOut ||
            stop.stop_requested()) {
          producer_ok = false;
          return;
        }
      }
      const std::uint64_t value = i * 0x9E3779B97F4A7C15ULL;
      std::memcpy(room.data(), &value, 8);
      writer.commit(size);
      sent_sum += value;
      if ((i & 63) == 63) writer.publish();
    }
    writer.publish();
  });
  RingReader reader = ring.reader();
  std::uint64_t received = 0, received_sum = 0;
  while (received < kRecords) {
    std::span<const std::byte> record;
    const ReadStatus status = reader.try_read(record);
    if (status == ReadStatus::kEmpty) {
      reader.release();
      ASSERT_EQ(wait_until(
                    ring.data().readable, [&] { return reader.poll(); }, WaitPolicy{}, kBound),
                WaitResult::kReady)
          << "lost wake-up after " << received << " records";
      continue;
    }
    ASSERT_EQ(status, ReadStatus::kOk) << to_string(reader.fault());
    ASSERT_EQ(record.size(), 8 + (received * 7) % 65);
    std::uint64_t value;
    std::memcpy(&value, record.data(), 8);
    ASSERT_EQ(value, received * 0x9E3779B97F4A7C15ULL);
    received_sum += value;
    ++received;
    if ((received & 255) == 0) reader.release();
  }
  reader.release();
  producer.join();
  EXPECT_TRUE(producer_ok);
  EXPECT_EQ(received_sum, sent_sum);
}

}  // namespace
}  // namespace procpool
