// FrameAssembler: a payload put back together from its frames, and each way a hostile sender's
// fragments are refused (typed, and with nothing kept), within the limits of frame_limits.hpp.

#include <gtest/gtest.h>

#include <cstddef>  // std::size_t
#include <cstdint>  // fixed-width integers
#include <span>     // std::span
#include <string>   // std::string

#include "procpool/frame_assembler.hpp"
#include "procpool/frame_limits.hpp"

namespace procpool {
namespace {

constexpr std::uint64_t kMaxPayload = 1000;

FrameHeader fragment(FrameType type, std::uint64_t task_id, bool more, std::uint16_t extra = 0) {
  FrameHeader header;
  header.type = type;
  header.task_id = task_id;
  header.handler_id = 4;
  header.attempt = 1;
  header.flags = static_cast<std::uint16_t>(extra | (more ? kFrameMore : 0));
  return header;
}

FrameHeader task(std::uint64_t id, bool more, std::uint16_t extra = 0) {
  return fragment(FrameType::kTask, id, more, extra);
}

std::span<const std::byte> bytes(const std::string& text) { return as_bytes(text); }

TEST(FrameAssembler, SingleFrameIsCompleteInPlace) {
  FrameAssembler assembler(kMaxPayload);
  const std::string payload = "in the ring";
  ASSERT_EQ(assembler.add(task(1, false), bytes(payload)), AssemblyStatus::kComplete);
  EXPECT_TRUE(assembler.in_place());
  EXPECT_EQ(assembler.payload().data(), bytes(payload).data());
  EXPECT_EQ(assembler.text(), payload);
  EXPECT_EQ(assembler.header().task_id, 1U);
  EXPECT_EQ(assembler.header().payload_size, payload.size());
  EXPECT_TRUE(assembler.take().empty());  // nothing of its own to hand out
}

TEST(FrameAssembler, SingleFrameIsCopiedWhenAskedTo) {
  FrameAssembler assembler(kMaxPayload, FrameAssembler::SingleFrame::kCopy);
  std::string payload = "in the ring";
  ASSERT_EQ(assembler.add(task(1, false), bytes(payload)), AssemblyStatus::kComplete);
  EXPECT_FALSE(assembler.in_place());
  EXPECT_NE(assembler.payload().data(), bytes(payload).data());
  payload[0] = 'X';  // the sender scribbles after the copy
  EXPECT_EQ(assembler.text(), "in the ring");
}

TEST(FrameAssembler, FragmentsAreJoinedUnderTheFirstHeader) {
  FrameAssembler assembler(kMaxPayload);
  EXPECT_EQ(assembler.add(task(9, true, kFrameChunk), bytes("one ")), AssemblyStatus::kIncomplete);
  EXPECT_TRUE(assembler.assembling());
  EXPECT_TRUE(assembler.payload().empty());
  EXPECT_EQ(assembler.add(task(9, true, kFrameChunk), bytes("two ")), AssemblyStatus::kIncomplete);
  ASSERT_EQ(assembler.add(task(9, false, kFrameChunk), bytes("three")), AssemblyStatus::kComplete);
  EXPECT_FALSE(assembler.assembling());
  EXPECT_FALSE(assembler.in_place());
  EXPECT_EQ(assembler.text(), "one two three");
  EXPECT_EQ(assembler.header().type, FrameType::kTask);
  EXPECT_EQ(assembler.header().task_id, 9U);
  EXPECT_EQ(assembler.header().handler_id, 4U);
  EXPECT_EQ(assembler.header().attempt, 1U);
  EXPECT_EQ(assembler.header().flags, kFrameChunk);
  EXPECT_EQ(assembler.header().payload_size, 13U);
}

// Each broken continuation of a started payload, with the status that names it.
TEST(FrameAssembler, RefusesEachBrokenContinuation) {
  struct Case {
    const char* what;
    FrameHeader next;
    std::string payload;
    AssemblyStatus expected;
  };
  FrameHeader other_handler = task(5, false);
  other_handler.handler_id = 7;
  FrameHeader other_attempt = task(5, false);
  other_attempt.attempt = 2;
  const Case cases[] = {
      {"another task", task(6, false), "x", AssemblyStatus::kTaskChanged},
      {"another type", fragment(FrameType::kResult, 5, false), "x", AssemblyStatus::kTypeChanged},
      {"another handler", other_handler, "x", AssemblyStatus::kHeaderChanged},
      {"another attempt", other_attempt, "x", AssemblyStatus::kHeaderChanged},
      {"kFrameChunk appears", task(5, false, kFrameChunk), "x", AssemblyStatus::kChunkChanged},
      {"empty middle fragment", task(5, true), "", AssemblyStatus::kEmptyFragment},
      {"total one byte above max_payload", task(5, false), std::string(kMaxPayload - 9, 'x'),
       AssemblyStatus::kTooLarge},
  };
  for (const Case& c : cases) {
    FrameAssembler assembler(kMaxPayload);
    ASSERT_EQ(assembler.add(task(5, true), bytes(std::string(10, 'a'))),
              AssemblyStatus::kIncomplete);
    const AssemblyStatus status = assembler.add(c.next, bytes(c.payload));
    EXPECT_EQ(status, c.expected) << c.what << ": " << to_string(status);
    EXPECT_TRUE(is_violation(status)) << c.what;
    EXPECT_FALSE(to_string(status).empty());
    // What was held is dropped: the next payload starts afresh.
    EXPECT_FALSE(assembler.assembling()) << c.what;
    const std::string fresh = "fresh";  // in place: text() points into it
    ASSERT_EQ(assembler.add(task(8, false), bytes(fresh)), AssemblyStatus::kComplete) << c.what;
    EXPECT_EQ(assembler.text(), "fresh") << c.what;
  }
}

TEST(FrameAssembler, RefusesBrokenFirstFrames) {
  FrameAssembler assembler(kMaxPayload);
  for (const FrameType type :
       {FrameType::kReady, FrameType::kCancel, FrameType::kShutdown, FrameType::kInit}) {
    EXPECT_EQ(assembler.add(fragment(type, 1, false), bytes("x")), AssemblyStatus::kNotAssembled)
        << static_cast<int>(type);
  }
  EXPECT_EQ(assembler.add(task(1, true), bytes("")), AssemblyStatus::kEmptyFragment);
  EXPECT_EQ(assembler.add(task(1, false), bytes(std::string(kMaxPayload + 1, 'x'))),
            AssemblyStatus::kTooLarge);
  EXPECT_EQ(assembler.add(task(1, true), bytes(std::string(kMaxPayload + 1, 'x'))),
            AssemblyStatus::kTooLarge);
  EXPECT_FALSE(assembler.assembling());
}

// The limits of frame_limits.hpp, exactly: max_payload for task data however it is split, and
// for kError its code plus kMaxErrorMessage bytes whatever max_payload is.
TEST(FrameAssembler, AcceptsExactlyTheLimitOfEachType) {
  const std::string half(kMaxPayload / 2, 'h');
  for (const FrameType type : {FrameType::kTask, FrameType::kResult, FrameType::kProgress}) {
    FrameAssembler assembler(kMaxPayload);
    ASSERT_EQ(assembler.add(fragment(type, 2, true), bytes(half)), AssemblyStatus::kIncomplete);
    ASSERT_EQ(assembler.add(fragment(type, 2, false), bytes(half)), AssemblyStatus::kComplete);
    EXPECT_EQ(assembler.payload().size(), kMaxPayload);
  }
  FrameAssembler tiny(1);
  const std::string error(frame_payload_limit(FrameType::kError, 1), 'e');
  // The detailed form's head, the longest type name and the longest message.
  EXPECT_EQ(error.size(), kErrorDetailHead + kMaxExceptionType + kMaxErrorMessage);
  ASSERT_EQ(tiny.add(fragment(FrameType::kError, 3, true), bytes(error.substr(0, 10))),
            AssemblyStatus::kIncomplete);
  ASSERT_EQ(tiny.add(fragment(FrameType::kError, 3, false), bytes(error.substr(10))),
            AssemblyStatus::kComplete);
  EXPECT_EQ(tiny.payload().size(), error.size());
  EXPECT_EQ(tiny.add(fragment(FrameType::kError, 3, false), bytes(error + "e")),
            AssemblyStatus::kTooLarge);
  EXPECT_EQ(tiny.add(fragment(FrameType::kResult, 3, false), bytes("ab")),
            AssemblyStatus::kTooLarge);
}

// No allocation once warm: the buffer keeps its capacity from payload to payload, and a buffer
// taken out and recycled is the one the next payload goes into.
TEST(FrameAssembler, ReusesItsBuffers) {
  FrameAssembler assembler(kMaxPayload, FrameAssembler::SingleFrame::kCopy);
  const std::string big(600, 'b');
  ASSERT_EQ(assembler.add(task(1, false), bytes(big)), AssemblyStatus::kComplete);
  const std::byte* first = assembler.payload().data();
  ASSERT_EQ(assembler.add(task(2, false), bytes(std::string(500, 'c'))), AssemblyStatus::kComplete);
  EXPECT_EQ(assembler.payload().data(), first);

  ASSERT_EQ(assembler.add(task(3, true), bytes(big)), AssemblyStatus::kIncomplete);
  ASSERT_EQ(assembler.add(task(3, false), bytes("end")), AssemblyStatus::kComplete);
  std::string taken = assembler.take();
  EXPECT_EQ(taken, big + "end");
  EXPECT_TRUE(assembler.payload().empty());
  const char* taken_data = taken.data();
  assembler.recycle(std::move(taken));
  ASSERT_EQ(assembler.add(task(4, true), bytes("x")), AssemblyStatus::kIncomplete);
  ASSERT_EQ(assembler.add(task(4, false), bytes("y")), AssemblyStatus::kComplete);
  EXPECT_EQ(assembler.text(), "xy");
  EXPECT_EQ(reinterpret_cast<const char*>(assembler.payload().data()), taken_data);
}

// Above 1 MiB only one buffer is kept, the largest: the next fragmented payload goes into it
// rather than into a fresh buffer grown by doubling, and a smaller large one does not replace it.
TEST(FrameAssembler, KeepsTheLargestBigBufferForTheNextFragmentedPayload) {
  constexpr std::uint64_t kLarge = 8 * 1024 * 1024;
  FrameAssembler assembler(kLarge);
  auto assemble = [&](std::uint64_t id, std::size_t size) {
    const std::string part(size / 2, 'p');
    EXPECT_EQ(assembler.add(task(id, true), bytes(part)), AssemblyStatus::kIncomplete);
    EXPECT_EQ(assembler.add(task(id, false), bytes(part)), AssemblyStatus::kComplete);
    return assembler.take();
  };
  std::string largest = assemble(1, 4 * 1024 * 1024);
  std::string smaller = assemble(2, 2 * 1024 * 1024);
  const char* kept = largest.data();
  const std::size_t kept_capacity = largest.capacity();
  assembler.recycle(std::move(largest));
  assembler.recycle(std::move(smaller));  // not kept: the larger one is
  ASSERT_EQ(assembler.add(task(3, true), bytes(std::string(3 * 1024 * 1024, 'a'))),
            AssemblyStatus::kIncomplete);
  ASSERT_EQ(assembler.add(task(3, false), bytes("z")), AssemblyStatus::kComplete);
  EXPECT_EQ(reinterpret_cast<const char*>(assembler.payload().data()), kept);
  EXPECT_EQ(assembler.payload().size(), 3u * 1024 * 1024 + 1);
  const std::string taken = assembler.take();
  EXPECT_EQ(taken.capacity(), kept_capacity);
  EXPECT_EQ(taken.back(), 'z');
}

}  // namespace
}  // namespace procpool
