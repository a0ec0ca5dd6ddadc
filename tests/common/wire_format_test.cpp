// Frames on the wire: every type through a real ring with its header and payload intact, the
// size limits of write_frame, each way decode_frame refuses a record, and random records.

#include <gtest/gtest.h>

#include <cstdint>      // fixed-width integers
#include <cstring>      // std::memcpy, std::memcmp
#include <iterator>     // std::size
#include <memory>       // std::unique_ptr (exact-size buffers, so ASan sees any over-read)
#include <optional>     // std::optional
#include <random>       // std::mt19937_64
#include <set>          // std::set
#include <span>         // std::span
#include <string>       // std::string
#include <string_view>  // std::string_view
#include <vector>       // std::vector

#include "local_ring.hpp"
#include "procpool/wire_format.hpp"

namespace procpool {
namespace {

using test::LocalRing;

constexpr std::size_t kRingCapacity = 4096;
constexpr std::size_t kHeaderSize = sizeof(FrameHeader);

constexpr FrameType kAllTypes[] = {FrameType::kReady, FrameType::kTask,    FrameType::kResult,
                                   FrameType::kError, FrameType::kCancel,  FrameType::kShutdown,
                                   FrameType::kInit,  FrameType::kProgress};
// Every type value but the retired 6 (a heartbeat frame nobody sent).
static_assert(std::size(kAllTypes) == kMaxFrameType - 1,
              "a new frame type needs a round-trip test");

std::vector<std::byte> pattern(std::size_t size, std::uint8_t seed) {
  std::vector<std::byte> bytes(size);
  for (std::size_t i = 0; i < size; ++i) bytes[i] = static_cast<std::byte>(seed + i * 7);
  return bytes;
}

std::vector<std::byte> copy_of(std::span<const std::byte> bytes) {
  return {bytes.begin(), bytes.end()};
}

// A record laid out by hand: `header` as-is (payload_size included, however wrong), then
// `payload_bytes` bytes of payload.
std::vector<std::byte> record_with(const FrameHeader& header, std::size_t payload_bytes) {
  std::vector<std::byte> record(kHeaderSize + payload_bytes, std::byte{0x5A});
  std::memcpy(record.data(), &header, kHeaderSize);
  return record;
}

FrameHeader valid_header(std::uint32_t payload_size) {
  FrameHeader header;
  header.type = FrameType::kTask;
  header.handler_id = 3;
  header.task_id = 99;
  header.payload_size = payload_size;
  header.attempt = 1;
  return header;
}

DecodeStatus decode(const std::vector<std::byte>& record) {
  FrameHeader header;
  std::span<const std::byte> payload;
  return decode_frame(record, header, payload);
}

// What came out of the ring for one frame.
struct Received {
  DecodeStatus status;
  std::size_t record_size;
  FrameHeader header;
  std::vector<std::byte> payload;
  bool payload_follows_header;  // the payload view starts right after the header in the record
};

// Reads and decodes the next record. The record's bytes are copied out before release().
std::optional<Received> receive(RingReader& reader) {
  std::span<const std::byte> record;
  if (reader.try_read(record) != ReadStatus::kOk) return std::nullopt;
  Received received{};
  std::span<const std::byte> payload;
  received.status = decode_frame(record, received.header, payload);
  received.record_size = record.size();
  received.payload = copy_of(payload);
  received.payload_follows_header =
      received.status != DecodeStatus::kOk || payload.data() == record.data() + kHeaderSize;
  reader.release();
  return received;
}

// ---------------------------------------------------------------------------------------------
// Through a ring.

TEST(WireFormat, EveryFrameTypeRoundTripsThroughARingWithHeaderAndPayload) {
  LocalRing ring(kRingCapacity);
  RingWriter writer = ring.writer();
  RingReader reader = ring.reader();
  for (const FrameType type : kAllTypes) {
    const auto n = static_cast<std::uint8_t>(type);
    SCOPED_TRACE(testing::Message() << "frame type " << int{n});
    FrameHeader sent;
    sent.type = type;
    sent.flags = n % 2 == 0 ? kFrameMore : 0;
    sent.handler_id = 0xA000'0000U + n;
    sent.task_id = 0x1122'3344'5566'7700ULL + n;
    sent.attempt = 3U * n;
    sent.payload_size = 0xDEAD;  // stale: write_frame must set it from the payload
    const std::vector<std::byte> payload = pattern(13U * n, n);

    ASSERT_EQ(write_frame(writer, sent, payload), WriteStatus::kOk);
    writer.publish();
    const auto received = receive(reader);
    ASSERT_TRUE(received.has_value()) << to_string(reader.fault());
    ASSERT_EQ(received->status, DecodeStatus::kOk) << to_string(received->status);
    EXPECT_EQ(received->record_size, kHeaderSize + payload.size());
    EXPECT_EQ(received->header.version, kWireVersion);
    EXPECT_EQ(received->header.type, type);
    EXPECT_EQ(received->header.flags, sent.flags);
    EXPECT_EQ(received->header.handler_id, sent.handler_id);
    EXPECT_EQ(received->header.task_id, sent.task_id);
    EXPECT_EQ(received->header.attempt, sent.attempt);
    EXPECT_EQ(received->header.payload_size, payload.size());
    EXPECT_EQ(received->payload, payload);
    EXPECT_TRUE(received->payload_follows_header);
  }
}

TEST(WireFormat, EmptyPayloadRoundTripsAsABareHeader) {
  LocalRing ring(kRingCapacity);
  RingWriter writer = ring.writer();
  RingReader reader = ring.reader();
  FrameHeader sent;
  sent.type = FrameType::kShutdown;
  sent.payload_size = 7;  // stale
  ASSERT_EQ(write_frame(writer, sent, {}), WriteStatus::kOk);
  writer.publish();
  const auto received = receive(reader);
  ASSERT_TRUE(received.has_value());
  ASSERT_EQ(received->status, DecodeStatus::kOk) << to_string(received->status);
  EXPECT_EQ(received->record_size, kHeaderSize);
  EXPECT_EQ(received->header.type, FrameType::kShutdown);
  EXPECT_EQ(received->header.payload_size, 0U);
  EXPECT_TRUE(received->payload.empty());
}

TEST(WireFormat, PayloadAtTheMaximumFitsAndOneByteMoreIsTooLarge) {
  LocalRing ring(kRingCapacity);
  RingWriter writer = ring.writer();
  RingReader reader = ring.reader();
  const std::size_t max_payload = writer.max_payload() - kHeaderSize;
  FrameHeader sent;
  sent.type = FrameType::kResult;
  sent.task_id = 1234;

  const std::vector<std::byte> too_large = pattern(max_payload + 1, 1);
  EXPECT_EQ(write_frame(writer, sent, too_large), WriteStatus::kTooLarge);
  // A refused frame leaves nothing behind, not even a partial record.
  EXPECT_FALSE(writer.has_unpublished());
  writer.publish();
  std::span<const std::byte> record;
  EXPECT_EQ(reader.try_read(record), ReadStatus::kEmpty);

  const std::vector<std::byte> largest = pattern(max_payload, 2);
  ASSERT_EQ(write_frame(writer, sent, largest), WriteStatus::kOk);
  writer.publish();
  const auto received = receive(reader);
  ASSERT_TRUE(received.has_value()) << to_string(reader.fault());
  ASSERT_EQ(received->status, DecodeStatus::kOk) << to_string(received->status);
  EXPECT_EQ(received->record_size, std::size_t{writer.max_payload()});
  EXPECT_EQ(received->header.task_id, 1234U);
  EXPECT_EQ(received->payload, largest);

  // Far too large is refused the same way (no truncation to 32 bits on the way).
  const std::vector<std::byte> huge(kRingCapacity * 4);
  EXPECT_EQ(write_frame(writer, sent, huge), WriteStatus::kTooLarge);
}

// A frame that would fit an empty ring but not now is kFull (wait and retry), not kTooLarge.
TEST(WireFormat, FrameThatDoesNotFitNowIsFullNotTooLarge) {
  LocalRing ring(kRingCapacity);
  RingWriter writer = ring.writer();
  RingReader reader = ring.reader();
  const std::vector<std::byte> payload = pattern(1000, 3);
  FrameHeader sent;
  sent.type = FrameType::kTask;
  int written = 0;
  WriteStatus status;
  while ((status = write_frame(writer, sent, payload)) == WriteStatus::kOk) {
    ASSERT_LT(++written, 10) << "a 4096-byte ring took too many 1 KiB frames";
  }
  EXPECT_EQ(status, WriteStatus::kFull);
  EXPECT_GT(written, 0);
  writer.publish();
  for (int i = 0; i < written; ++i) {
    const auto received = receive(reader);
    ASSERT_TRUE(received.has_value());
    EXPECT_EQ(received->status, DecodeStatus::kOk);
    EXPECT_EQ(received->payload, payload);
  }
  EXPECT_EQ(write_frame(writer, sent, payload), WriteStatus::kOk);
}

// Many laps of the ring with frame sizes that do not divide it: frames placed after a padding
// record at the wrap decode like any other.
TEST(WireFormat, FramesDecodeAcrossManyRingWraps) {
  LocalRing ring(kRingCapacity);
  RingWriter writer = ring.writer();
  RingReader reader = ring.reader();
  std::mt19937_64 rng(5);
  const std::size_t max_payload = writer.max_payload() - kHeaderSize;
  for (std::uint64_t task = 0; task < 5000; ++task) {
    FrameHeader sent;
    sent.type = kAllTypes[task % std::size(kAllTypes)];
    sent.task_id = task;
    const std::vector<std::byte> payload =
        pattern(rng() % (max_payload + 1), static_cast<std::uint8_t>(task));
    ASSERT_EQ(write_frame(writer, sent, payload), WriteStatus::kOk) << "frame " << task;
    writer.publish();
    const auto received = receive(reader);
    ASSERT_TRUE(received.has_value()) << "frame " << task << ": " << to_string(reader.fault());
    ASSERT_EQ(received->status, DecodeStatus::kOk) << "frame " << task;
    EXPECT_EQ(received->header.task_id, task);
    EXPECT_EQ(received->header.type, sent.type);
    ASSERT_EQ(received->payload, payload) << "frame " << task;
  }
  EXPECT_GT(ring.data().write_pos.load(), 10 * kRingCapacity);
}

// ---------------------------------------------------------------------------------------------
// decode_frame refusals. Each case starts from a header that decodes (first test) and breaks
// one thing.

TEST(WireFormat, HandBuiltValidRecordDecodes) {
  const std::vector<std::byte> record = record_with(valid_header(10), 10);
  FrameHeader header;
  std::span<const std::byte> payload;
  ASSERT_EQ(decode_frame(record, header, payload), DecodeStatus::kOk);
  EXPECT_EQ(header.type, FrameType::kTask);
  EXPECT_EQ(header.handler_id, 3U);
  EXPECT_EQ(header.task_id, 99U);
  EXPECT_EQ(header.attempt, 1U);
  EXPECT_EQ(payload.data(), record.data() + kHeaderSize);
  EXPECT_EQ(payload.size(), 10U);
}

TEST(WireFormat, DecodeRejectsRecordShorterThanAHeader) {
  const std::vector<std::byte> full = record_with(valid_header(0), 0);
  for (std::size_t size = 0; size < kHeaderSize; ++size) {
    // Exactly `size` bytes on the heap: reading the 24-byte header anyway would trip ASan.
    std::unique_ptr<std::byte[]> bytes(new std::byte[size]);
    std::memcpy(bytes.get(), full.data(), size);
    FrameHeader header;
    std::span<const std::byte> payload;
    EXPECT_EQ(decode_frame({bytes.get(), size}, header, payload), DecodeStatus::kTooShort)
        << size << " bytes";
  }
  FrameHeader header;
  std::span<const std::byte> payload;
  EXPECT_EQ(decode_frame({}, header, payload), DecodeStatus::kTooShort) << "empty span";
}

TEST(WireFormat, DecodeRejectsOtherWireVersions) {
  for (const int version : {0, 1, 2, 4, 255}) {
    FrameHeader header = valid_header(4);
    header.version = static_cast<std::uint8_t>(version);
    EXPECT_EQ(decode(record_with(header, 4)), DecodeStatus::kBadVersion) << version;
  }
}

// 6 was the heartbeat frame, never sent and now retired: a peer sending it is not speaking v3.
TEST(WireFormat, DecodeRejectsFrameTypesOutsideOneToNineAndTheRetiredSix) {
  for (const int type : {0, 6, 10, 11, 128, 255}) {
    FrameHeader header = valid_header(4);
    header.type = static_cast<FrameType>(type);
    EXPECT_EQ(decode(record_with(header, 4)), DecodeStatus::kBadType) << type;
  }
}

TEST(WireFormat, DecodeRejectsEveryUnknownFlagBit) {
  for (int bit = 0; bit < 16; ++bit) {
    const auto flag = static_cast<std::uint16_t>(1U << bit);
    FrameHeader header = valid_header(4);
    header.flags = flag;
    const DecodeStatus expected =
        (flag & kKnownFrameFlags) != 0 ? DecodeStatus::kOk : DecodeStatus::kBadFlags;
    EXPECT_EQ(decode(record_with(header, 4)), expected) << "bit " << bit;
  }
  FrameHeader header = valid_header(4);
  header.flags = kFrameMore | 0x8000;  // a known bit does not excuse an unknown one
  EXPECT_EQ(decode(record_with(header, 4)), DecodeStatus::kBadFlags);
}

TEST(WireFormat, AChunkNeverAsksForProgress) {
  FrameHeader header = valid_header(4);
  header.flags = kFrameChunk | kFrameProgress;
  EXPECT_EQ(decode(record_with(header, 4)), DecodeStatus::kBadFlags);
  header.flags = kFrameProgress | kFrameHigh;
  EXPECT_EQ(decode(record_with(header, 4)), DecodeStatus::kOk);
}

TEST(WireFormat, APriorityIsHighOrLowNeverBoth) {
  FrameHeader header = valid_header(4);
  header.flags = kFrameHigh | kFrameLow;
  EXPECT_EQ(decode(record_with(header, 4)), DecodeStatus::kBadFlags);
  for (unsigned rank = 0; rank < 3; ++rank) {
    header.flags = frame_priority_flags(rank);
    EXPECT_EQ(decode(record_with(header, 4)), DecodeStatus::kOk);
    EXPECT_EQ(frame_priority_rank(header.flags), rank);
  }
}

TEST(WireFormat, DecodeRejectsPayloadSizeThatDisagreesWithTheRecord) {
  struct Case {
    std::uint32_t claimed;
    std::size_t actual;
  };
  for (const Case c : {Case{9, 10}, Case{11, 10}, Case{0, 10}, Case{1, 0}, Case{0xFFFF'FFFF, 10},
                       Case{0xFFFF'FFFF, 0}}) {
    EXPECT_EQ(decode(record_with(valid_header(c.claimed), c.actual)), DecodeStatus::kLengthMismatch)
        << "claims " << c.claimed << ", has " << c.actual;
  }
}

TEST(WireFormat, EveryDecodeStatusHasADistinctDescription) {
  const DecodeStatus all[] = {DecodeStatus::kOk,         DecodeStatus::kTooShort,
                              DecodeStatus::kBadVersion, DecodeStatus::kBadType,
                              DecodeStatus::kBadFlags,   DecodeStatus::kLengthMismatch};
  std::set<std::string> seen;
  for (const DecodeStatus status : all) {
    const std::string_view text = to_string(status);
    EXPECT_FALSE(text.empty()) << static_cast<int>(status);
    EXPECT_TRUE(seen.emplace(text).second) << "duplicate: " << text;
  }
  // A value from a corrupted or newer source still gets a description, never a crash.
  EXPECT_FALSE(to_string(static_cast<DecodeStatus>(200)).empty());
}

// 100,000 random records of 0..64 bytes, each in an exact-size heap buffer (ASan sees any read
// past its end). Half the fields of each are forced valid, so that every refusal and kOk occur
// often. decode_frame must never crash, must say kOk exactly when the header is valid, and on
// refusal must name a rule the record really breaks.
TEST(WireFormat, RandomRecordsDecodeSafelyAndOnlyValidOnesAreAccepted) {
  constexpr int kRecords = 100'000;
  const std::uint64_t seed = 0x5EED'F00D;
  std::mt19937_64 rng(seed);
  int accepted = 0;
  for (int i = 0; i < kRecords; ++i) {
    const std::size_t size = rng() % 65;
    std::unique_ptr<std::byte[]> bytes(new std::byte[size]);
    for (std::size_t b = 0; b < size; ++b) bytes[b] = static_cast<std::byte>(rng());
    if (size >= kHeaderSize) {
      FrameHeader forced;
      std::memcpy(&forced, bytes.get(), kHeaderSize);
      if (rng() % 2) forced.version = kWireVersion;
      if (rng() % 2) forced.type = static_cast<FrameType>(1 + rng() % kMaxFrameType);
      if (rng() % 2) forced.flags = static_cast<std::uint16_t>(rng() % 2);
      if (rng() % 2) forced.payload_size = static_cast<std::uint32_t>(size - kHeaderSize);
      std::memcpy(bytes.get(), &forced, kHeaderSize);
    }
    const std::span<const std::byte> record(bytes.get(), size);

    // The rules, checked independently of decode_frame.
    FrameHeader raw{};
    if (size >= kHeaderSize) std::memcpy(&raw, bytes.get(), kHeaderSize);
    const auto raw_type = static_cast<std::uint8_t>(raw.type);
    const bool too_short = size < kHeaderSize;
    const bool bad_version = !too_short && raw.version != kWireVersion;
    const bool bad_type =
        !too_short && (raw_type == 0 || raw_type == 6 || raw_type > kMaxFrameType);
    const bool bad_flags =
        !too_short && ((raw.flags & ~kKnownFrameFlags) != 0 ||
                       (raw.flags & kFramePriorityFlags) == kFramePriorityFlags ||
                       ((raw.flags & kFrameChunk) != 0 && (raw.flags & kFrameProgress) != 0));
    const bool bad_length = !too_short && raw.payload_size != size - kHeaderSize;
    const bool valid = !too_short && !bad_version && !bad_type && !bad_flags && !bad_length;

    FrameHeader header;
    std::span<const std::byte> payload;
    const DecodeStatus status = decode_frame(record, header, payload);
    SCOPED_TRACE(testing::Message() << "seed " << seed << ", record " << i << ", " << size
                                    << " bytes, status " << to_string(status));
    switch (status) {
      case DecodeStatus::kOk:
        ++accepted;
        ASSERT_TRUE(valid);
        ASSERT_EQ(std::memcmp(&header, bytes.get(), kHeaderSize), 0);
        ASSERT_EQ(header.version, kWireVersion);
        ASSERT_GE(static_cast<std::uint8_t>(header.type), 1);
        ASSERT_LE(static_cast<std::uint8_t>(header.type), kMaxFrameType);
        ASSERT_EQ(header.flags & ~kKnownFrameFlags, 0);
        ASSERT_EQ(payload.data(), record.data() + kHeaderSize);
        ASSERT_EQ(payload.size(), header.payload_size);
        ASSERT_EQ(payload.size(), size - kHeaderSize);
        break;
      case DecodeStatus::kTooShort:
        ASSERT_TRUE(too_short);
        break;
      case DecodeStatus::kBadVersion:
        ASSERT_TRUE(bad_version);
        break;
      case DecodeStatus::kBadType:
        ASSERT_TRUE(bad_type);
        break;
      case DecodeStatus::kBadFlags:
        ASSERT_TRUE(bad_flags);
        break;
      case DecodeStatus::kLengthMismatch:
        ASSERT_TRUE(bad_length);
        break;
      default:
        FAIL() << "status outside the enum: " << static_cast<int>(status);
    }
    ASSERT_EQ(status == DecodeStatus::kOk, valid);
  }
  // With half the fields forced valid, about 1 in 16 full-length records should decode.
  EXPECT_GT(accepted, kRecords / 100);
}

TEST(WireFormat, HandlerNamesRoundTrip) {
  const std::vector<std::string> names = {"fib", "main", std::string(kMaxHandlerName, 'n')};
  const std::string payload = encode_handler_names(names);
  std::vector<std::string> decoded;
  ASSERT_TRUE(decode_handler_names(as_bytes(payload), decoded));
  EXPECT_EQ(decoded, names);
  ASSERT_TRUE(decode_handler_names({}, decoded));
  EXPECT_TRUE(decoded.empty());
}

TEST(WireFormat, MalformedHandlerNamesAreRejected) {
  std::vector<std::string> decoded;
  const std::string good = encode_handler_names({"abc"});
  // Truncated length, truncated name, zero-length name, over-long name.
  EXPECT_FALSE(decode_handler_names(as_bytes(std::string_view(good).substr(0, 2)), decoded));
  EXPECT_FALSE(decode_handler_names(as_bytes(std::string_view(good).substr(0, 5)), decoded));
  EXPECT_FALSE(decode_handler_names(as_bytes(encode_handler_names({""})), decoded));
  EXPECT_FALSE(decode_handler_names(
      as_bytes(encode_handler_names({std::string(kMaxHandlerName + 1, 'x')})), decoded));
  std::string huge_length(4, '\xff');
  EXPECT_FALSE(decode_handler_names(as_bytes(huge_length), decoded));
}

TEST(WireFormat, ErrorPayloadRoundTripsAndRejectsUnknownCodes) {
  const std::string payload = encode_error(WorkerErrorCode::kHandlerFailed, "boom");
  WorkerErrorCode code{};
  std::string_view message;
  ASSERT_TRUE(decode_error(as_bytes(payload), code, message));
  EXPECT_EQ(code, WorkerErrorCode::kHandlerFailed);
  EXPECT_EQ(message, "boom");
  EXPECT_FALSE(decode_error(as_bytes(std::string_view("ab")), code, message));
  EXPECT_FALSE(
      decode_error(as_bytes(encode_error(static_cast<WorkerErrorCode>(99), "x")), code, message));
  EXPECT_FALSE(
      decode_error(as_bytes(encode_error(static_cast<WorkerErrorCode>(0), "x")), code, message));
}

TEST(WireFormat, ErrorDetailRoundTripsAndRejectsEveryBadHead) {
  ErrorDetail sent;
  sent.code = WorkerErrorCode::kHandlerFailed;
  sent.type = "std::invalid_argument";
  sent.has_code = true;
  sent.user_code = -42;
  sent.message = "bad number";
  const std::string payload = encode_error_detail(sent);
  ASSERT_EQ(payload.size(), kErrorDetailHead + sent.type.size() + sent.message.size());
  ErrorDetail got;
  ASSERT_TRUE(decode_error_detail(as_bytes(payload), got));
  EXPECT_EQ(got.code, sent.code);
  EXPECT_EQ(got.type, sent.type);
  EXPECT_TRUE(got.has_code);
  EXPECT_EQ(got.user_code, -42);
  EXPECT_EQ(got.message, sent.message);

  sent.has_code = false;
  ASSERT_TRUE(decode_error_detail(as_bytes(encode_error_detail(sent)), got));
  EXPECT_FALSE(got.has_code);
  EXPECT_EQ(got.user_code, 0);

  auto patched = [&](std::size_t offset, std::uint32_t value) {
    std::string bad = encode_error_detail(sent);
    std::memcpy(bad.data() + offset, &value, sizeof value);
    return bad;
  };
  EXPECT_FALSE(decode_error_detail(as_bytes(payload.substr(0, kErrorDetailHead - 1)), got));
  EXPECT_FALSE(decode_error_detail(as_bytes(patched(0, 0)), got));     // code 0
  EXPECT_FALSE(decode_error_detail(as_bytes(patched(0, 99)), got));    // unknown code
  EXPECT_FALSE(decode_error_detail(as_bytes(patched(4, 4096)), got));  // type past the end
  EXPECT_FALSE(decode_error_detail(as_bytes(patched(8, 2)), got));     // has_code not 0 or 1
  EXPECT_FALSE(decode_error_detail(as_bytes(patched(12, 1)), got));    // the zero word
  EXPECT_FALSE(decode_error_detail(as_bytes(patched(16, 5)), got));    // a code without has_code
  sent.type = std::string_view();
  std::string long_type = encode_error_detail(sent);
  const auto too_long = static_cast<std::uint32_t>(kMaxExceptionType + 1);
  std::memcpy(long_type.data() + 4, &too_long, sizeof too_long);
  long_type += std::string(kMaxExceptionType + 1, 't');
  EXPECT_FALSE(decode_error_detail(as_bytes(long_type), got));  // a type above the maximum
}

}  // namespace
}  // namespace procpool
