// FrameWriter: a payload into a ring as one frame or as fragments, resumed as room appears, with
// every header field and flag as docs/protocol.md says.

#include <gtest/gtest.h>

#include <cstdint>  // fixed-width integers
#include <span>     // std::span
#include <string>   // std::string
#include <vector>   // std::vector

#include "local_ring.hpp"
#include "procpool/frame_assembler.hpp"
#include "procpool/frame_limits.hpp"
#include "procpool/frame_writer.hpp"

namespace procpool {
namespace {

using test::LocalRing;

constexpr std::size_t kRingCapacity = 4096;

std::string pattern(std::size_t size) {
  std::string text(size, '\0');
  for (std::size_t i = 0; i < size; ++i) text[i] = static_cast<char>('a' + (i * 7) % 26);
  return text;
}

FrameHeader task_header() {
  FrameHeader header;
  header.type = FrameType::kTask;
  header.handler_id = 3;
  header.task_id = 77;
  header.attempt = 2;
  return header;
}

struct Frame {
  FrameHeader header;
  std::string payload;
};

// Every published frame, decoded; the bytes go back to the writer.
std::vector<Frame> drain(RingReader& reader) {
  std::vector<Frame> frames;
  std::span<const std::byte> record;
  while (reader.try_read(record) == ReadStatus::kOk) {
    Frame frame;
    std::span<const std::byte> payload;
    EXPECT_EQ(decode_frame(record, frame.header, payload), DecodeStatus::kOk);
    frame.payload.assign(reinterpret_cast<const char*>(payload.data()), payload.size());
    frames.push_back(frame);
  }
  reader.release();
  return frames;
}

TEST(FrameWriter, SmallPayloadIsOneFrameWithTheHeaderAsGiven) {
  LocalRing ring(kRingCapacity);
  RingWriter writer = ring.writer();
  RingReader reader = ring.reader();
  FrameHeader header = task_header();
  header.flags = kFrameMore | kFrameChunk;  // kFrameMore is the writer's to set, not the caller's
  const std::string payload = pattern(100);
  FrameWriter frames;
  frames.begin(header);
  EXPECT_TRUE(frames.active());
  ASSERT_EQ(frames.write(writer, as_bytes(payload)), WriteStatus::kOk);
  EXPECT_FALSE(frames.active());
  EXPECT_EQ(frames.offset(), payload.size());
  writer.publish();
  const std::vector<Frame> got = drain(reader);
  ASSERT_EQ(got.size(), 1U);
  EXPECT_EQ(got[0].header.type, FrameType::kTask);
  EXPECT_EQ(got[0].header.task_id, 77U);
  EXPECT_EQ(got[0].header.handler_id, 3U);
  EXPECT_EQ(got[0].header.attempt, 2U);
  EXPECT_EQ(got[0].header.flags, kFrameChunk);
  EXPECT_EQ(got[0].payload, payload);
}

TEST(FrameWriter, EmptyPayloadIsOneEmptyFrame) {
  LocalRing ring(kRingCapacity);
  RingWriter writer = ring.writer();
  RingReader reader = ring.reader();
  FrameWriter frames;
  frames.begin(task_header());
  ASSERT_EQ(frames.write(writer, {}), WriteStatus::kOk);
  writer.publish();
  const std::vector<Frame> got = drain(reader);
  ASSERT_EQ(got.size(), 1U);
  EXPECT_EQ(got[0].header.flags, 0);
  EXPECT_TRUE(got[0].payload.empty());
}

// One record holds fragment_capacity() bytes: that many is one frame, one more is two.
TEST(FrameWriter, FragmentsAtTheRecordBoundary) {
  LocalRing ring(kRingCapacity);
  RingWriter writer = ring.writer();
  RingReader reader = ring.reader();
  const std::size_t capacity = fragment_capacity(writer.max_payload());
  for (const std::size_t size : {capacity, capacity + 1}) {
    const std::string payload = pattern(size);
    FrameWriter frames;
    frames.begin(task_header());
    ASSERT_EQ(frames.write(writer, as_bytes(payload)), WriteStatus::kOk) << size;
    writer.publish();
    const std::vector<Frame> got = drain(reader);
    ASSERT_EQ(got.size(), size == capacity ? 1U : 2U) << size;
    EXPECT_EQ(got.front().payload.size(), capacity) << size;
    EXPECT_EQ(got.back().header.flags & kFrameMore, 0) << size;
    if (got.size() == 2) {
      EXPECT_EQ(got[0].header.flags, kFrameMore);
      EXPECT_EQ(got[1].payload, payload.substr(capacity));
    }
  }
}

// A payload many rings long: write() stops at kFull, the reader drains, write() continues where
// it stopped, and the fragments put together are the payload (the pool's partial-task path).
TEST(FrameWriter, ResumesWhereTheRingFilledUp) {
  LocalRing ring(kRingCapacity);
  RingWriter writer = ring.writer();
  RingReader reader = ring.reader();
  const std::string payload = pattern(10 * kRingCapacity + 123);
  FrameHeader header = task_header();
  header.flags = kFrameChunk;
  FrameWriter frames;
  frames.begin(header);
  FrameAssembler assembler(payload.size(), FrameAssembler::SingleFrame::kCopy);
  std::string assembled;
  int stops = 0;
  std::size_t last_offset = 0;
  for (int round = 0; round < 100; ++round) {
    const WriteStatus status = frames.write(writer, as_bytes(payload));
    ASSERT_TRUE(status == WriteStatus::kOk || status == WriteStatus::kFull);
    EXPECT_GT(frames.offset(), last_offset) << "no progress in round " << round;
    last_offset = frames.offset();
    if (status == WriteStatus::kFull) {
      ++stops;
      EXPECT_TRUE(frames.active());
      const std::uint32_t needed = frames.next_record_size(writer, as_bytes(payload));
      EXPECT_GT(needed, sizeof(FrameHeader));
      EXPECT_LE(needed, writer.max_payload());
      EXPECT_FALSE(writer.can_reserve(needed));
    }
    writer.publish();
    for (const Frame& frame : drain(reader)) {
      const AssemblyStatus added = assembler.add(frame.header, as_bytes(frame.payload));
      ASSERT_FALSE(is_violation(added)) << to_string(added);
      if (added == AssemblyStatus::kComplete) assembled = std::string(assembler.text());
    }
    if (status == WriteStatus::kOk) break;
  }
  EXPECT_FALSE(frames.active());
  EXPECT_GE(stops, 10);
  EXPECT_EQ(assembled, payload);
  EXPECT_EQ(assembler.header().flags, kFrameChunk);
  EXPECT_EQ(assembler.header().task_id, 77U);
}

TEST(FrameWriter, CorruptRingStopsTheWriter) {
  LocalRing ring(kRingCapacity);
  RingWriter writer = ring.writer();
  const std::string payload = pattern(4 * kRingCapacity);
  FrameWriter frames;
  frames.begin(task_header());
  ASSERT_EQ(frames.write(writer, as_bytes(payload)), WriteStatus::kFull);
  writer.publish();
  ring.data().read_pos.store(3);  // a consumer position that cannot be
  EXPECT_EQ(frames.write(writer, as_bytes(payload)), WriteStatus::kCorrupt);
  EXPECT_FALSE(frames.active());
  EXPECT_EQ(writer.fault(), RingFault::kPositionMisaligned);
}

TEST(FrameWriter, IdleWriterWritesNothing) {
  LocalRing ring(kRingCapacity);
  RingWriter writer = ring.writer();
  FrameWriter frames;
  EXPECT_EQ(frames.write(writer, as_bytes(pattern(10))), WriteStatus::kOk);
  EXPECT_FALSE(writer.has_unpublished());
  frames.begin(task_header());
  frames.reset();
  EXPECT_EQ(frames.write(writer, as_bytes(pattern(10))), WriteStatus::kOk);
  EXPECT_FALSE(writer.has_unpublished());
}

}  // namespace
}  // namespace procpool
