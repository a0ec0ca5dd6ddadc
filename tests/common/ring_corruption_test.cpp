// A peer that writes garbage over the ring's positions or records: the views report a typed
// RingFault and never read out of bounds (this suite runs under ASan in the asan preset, with the
// record area allocated to its exact size).

#include <gtest/gtest.h>

#include <cstring>  // std::memcpy
#include <random>   // std::mt19937_64
#include <string>   // std::string

#include "local_ring.hpp"
#include "procpool/detail/record_header.hpp"

namespace procpool {
namespace {

using test::LocalRing;

void write_records(RingWriter& writer, int count, std::size_t size) {
  const std::string payload(size, 'r');
  for (int i = 0; i < count; ++i) {
    ASSERT_EQ(writer.try_write(std::as_bytes(std::span<const char>(payload))), WriteStatus::kOk);
  }
  writer.publish();
}

ReadStatus read_one(RingReader& reader) {
  std::span<const std::byte> record;
  return reader.try_read(record);
}

TEST(RingCorruption, WritePositionMovingBackwardsIsAFault) {
  LocalRing ring(1024);
  RingWriter writer = ring.writer();
  RingReader reader = ring.reader();
  write_records(writer, 2, 16);
  ASSERT_EQ(read_one(reader), ReadStatus::kOk);
  ASSERT_EQ(read_one(reader), ReadStatus::kOk);
  ring.data().write_pos.store(8);
  EXPECT_EQ(read_one(reader), ReadStatus::kCorrupt);
  EXPECT_EQ(reader.fault(), RingFault::kPositionRegressed);
}

TEST(RingCorruption, WritePositionMoreThanARingAheadIsAFault) {
  LocalRing ring(1024);
  RingReader reader = ring.reader();
  ring.data().write_pos.store(1024 + 8);
  EXPECT_EQ(read_one(reader), ReadStatus::kCorrupt);
  EXPECT_EQ(reader.fault(), RingFault::kPositionOverrun);
}

TEST(RingCorruption, MisalignedWritePositionIsAFault) {
  LocalRing ring(1024);
  RingReader reader = ring.reader();
  ring.data().write_pos.store(13);
  EXPECT_EQ(read_one(reader), ReadStatus::kCorrupt);
  EXPECT_EQ(reader.fault(), RingFault::kPositionMisaligned);
}

TEST(RingCorruption, UnknownRecordTagIsAFault) {
  LocalRing ring(1024);
  RingWriter writer = ring.writer();
  RingReader reader = ring.reader();
  write_records(writer, 1, 16);
  detail::store_record_header(ring.bytes().data(), 16, 0xDEADBEEF);
  EXPECT_EQ(read_one(reader), ReadStatus::kCorrupt);
  EXPECT_EQ(reader.fault(), RingFault::kBadRecordTag);
}

TEST(RingCorruption, RecordSizeAboveTheMaximumIsAFault) {
  LocalRing ring(1024);
  RingWriter writer = ring.writer();
  RingReader reader = ring.reader();
  write_records(writer, 1, 16);
  detail::store_record_header(ring.bytes().data(), 0xFFFFFFF0, kRecordTagData);
  EXPECT_EQ(read_one(reader), ReadStatus::kCorrupt);
  EXPECT_EQ(reader.fault(), RingFault::kRecordTooLarge);
}

TEST(RingCorruption, RecordLongerThanWhatWasPublishedIsAFault) {
  LocalRing ring(1024);
  RingWriter writer = ring.writer();
  RingReader reader = ring.reader();
  write_records(writer, 1, 16);  // 24 bytes published
  detail::store_record_header(ring.bytes().data(), 200, kRecordTagData);
  EXPECT_EQ(read_one(reader), ReadStatus::kCorrupt);
  EXPECT_EQ(reader.fault(), RingFault::kRecordOverrun);
}

TEST(RingCorruption, PaddingThatDoesNotReachTheEndIsAFault) {
  LocalRing ring(1024);
  RingWriter writer = ring.writer();
  RingReader reader = ring.reader();
  write_records(writer, 4, 16);
  detail::store_record_header(ring.bytes().data(), 8, kRecordTagPadding);
  EXPECT_EQ(read_one(reader), ReadStatus::kCorrupt);
  EXPECT_EQ(reader.fault(), RingFault::kBadPadding);
}

TEST(RingCorruption, FaultIsStickyEvenAfterThePeerRepairsTheRing) {
  LocalRing ring(1024);
  RingReader reader = ring.reader();
  ring.data().write_pos.store(13);
  EXPECT_EQ(read_one(reader), ReadStatus::kCorrupt);
  ring.data().write_pos.store(0);
  EXPECT_EQ(read_one(reader), ReadStatus::kCorrupt);
  EXPECT_TRUE(reader.poll()) << "a corrupt ring must wake a waiter so it sees the fault";
}

TEST(RingCorruption, ReadPositionBeyondPublishedIsAFaultForTheWriter) {
  LocalRing ring(256);
  RingWriter writer = ring.writer();
  write_records(writer, 8, 24);  // ring full
  ring.data().read_pos.store(4096);
  std::span<std::byte> room;
  EXPECT_EQ(writer.try_reserve(24, room), WriteStatus::kCorrupt);
  EXPECT_EQ(writer.fault(), RingFault::kPositionOverrun);
}

TEST(RingCorruption, ReadPositionMovingBackwardsIsAFaultForTheWriter) {
  LocalRing ring(256);
  RingWriter writer = ring.writer();
  RingReader reader = ring.reader();
  write_records(writer, 8, 24);
  for (int i = 0; i < 8; ++i) ASSERT_EQ(read_one(reader), ReadStatus::kOk);
  reader.release();
  write_records(writer, 8, 24);  // the writer has now seen read_pos = 256
  ring.data().read_pos.store(64);
  std::span<std::byte> room;
  EXPECT_EQ(writer.try_reserve(24, room), WriteStatus::kCorrupt);
  EXPECT_EQ(writer.fault(), RingFault::kPositionRegressed);
}

// check_read_position() validates the consumer's position while the ring has room, when
// try_reserve() would not look at it yet: beyond what was published, backwards, misaligned.
TEST(RingCorruption, CheckReadPositionCatchesALieWhileTheRingHasRoom) {
  struct Case {
    std::uint64_t read_pos;
    RingFault fault;
  };
  // One record of 24 bytes published (footprint 32), released by the reader: read_pos 32.
  for (const Case c :
       {Case{4096, RingFault::kPositionOverrun}, Case{40, RingFault::kPositionOverrun},
        Case{0, RingFault::kPositionRegressed}, Case{36, RingFault::kPositionMisaligned}}) {
    LocalRing ring(1024);
    RingWriter writer = ring.writer();
    RingReader reader = ring.reader();
    write_records(writer, 1, 24);
    ASSERT_EQ(read_one(reader), ReadStatus::kOk);
    reader.release();
    ASSERT_TRUE(writer.check_read_position());
    EXPECT_EQ(writer.read_position(), 32u);
    ring.data().read_pos.store(c.read_pos);
    std::span<std::byte> room;
    ASSERT_EQ(writer.try_reserve(24, room), WriteStatus::kOk) << "room left: not looked at";
    EXPECT_FALSE(writer.check_read_position()) << "read_pos " << c.read_pos;
    EXPECT_EQ(writer.fault(), c.fault) << "read_pos " << c.read_pos;
    EXPECT_FALSE(writer.check_read_position()) << "the fault is sticky";
  }
}

// Random bytes over the positions, the record headers and the record bodies, 20,000 times: every
// outcome is kOk with a record inside the ring, kEmpty, or a typed fault. Touching every byte of
// every returned record lets ASan catch a view that points past the ring.
TEST(RingCorruption, RandomBytesYieldTypedResultsNeverOutOfBoundsReads) {
  std::mt19937_64 rng(2026);
  int faults = 0;
  for (int trial = 0; trial < 20'000; ++trial) {
    LocalRing ring(512);
    RingWriter writer = ring.writer();
    RingReader reader = ring.reader();
    const int records = static_cast<int>(rng() % 12);
    for (int i = 0; i < records; ++i) {
      const std::string payload(rng() % 64, 'p');
      if (writer.try_write(std::as_bytes(std::span<const char>(payload))) != WriteStatus::kOk) {
        break;
      }
    }
    writer.publish();
    const int scribbles = 1 + static_cast<int>(rng() % 4);
    for (int s = 0; s < scribbles; ++s) {
      switch (rng() % 3) {
        case 0:
          ring.data().write_pos.store(rng() % 2 ? rng() : rng() % 2048);
          break;
        case 1: {  // a random 8-byte word, likely over a record header
          const std::uint64_t word = rng();
          std::memcpy(ring.bytes().data() + 8 * (rng() % 64), &word, 8);
          break;
        }
        case 2:
          ring.bytes()[rng() % 512] = static_cast<std::byte>(rng());
          break;
      }
    }
    std::span<const std::byte> record;
    for (int step = 0; step < 64; ++step) {
      const ReadStatus status = reader.try_read(record);
      if (status == ReadStatus::kOk) {
        const std::byte* begin = ring.bytes().data();
        ASSERT_GE(record.data(), begin);
        ASSERT_LE(record.data() + record.size(), begin + ring.bytes().size());
        unsigned sum = 0;
        for (std::byte b : record) sum += static_cast<unsigned>(b);
        (void)sum;
        continue;
      }
      if (status == ReadStatus::kCorrupt) {
        ASSERT_NE(reader.fault(), RingFault::kNone);
        ++faults;
      }
      break;
    }
  }
  EXPECT_GT(faults, 1000) << "the scribbles should usually be detected";
}

}  // namespace
}  // namespace procpool
