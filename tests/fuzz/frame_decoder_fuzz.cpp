// libFuzzer target: the frame decoder and the payload codecs of wire_format.hpp on records a
// hostile worker wrote. The input is one ring record (libFuzzer allocates it to its exact size,
// so ASan flags any read past it). Each decoder's verdict is checked against the layout in
// docs/protocol.md, read here independently of the decoder; whatever decodes is encoded again
// and must give back the input byte for byte, then decode to the same values. A frame goes
// through a real ring for that: write_frame, try_read, decode_frame.
//
// The same input is also read as a conversation for the reassembler (FrameAssembler): u8 mode
// (bit 0: copy single frames), u16 max_payload, then records, each u16 length + that many bytes.
// Every record that decodes is added; the assembler's verdict and payload must match a model of
// docs/protocol.md's "Large payloads" rules written here, and never exceed frame_payload_limit().

#include <algorithm>    // std::equal, std::max
#include <bit>          // std::bit_ceil
#include <cstddef>      // std::byte, std::size_t
#include <cstdint>      // fixed-width integers
#include <span>         // std::span
#include <string>       // std::string
#include <string_view>  // std::string_view
#include <vector>       // std::vector

#include "fuzz_bytes.hpp"
#include "fuzz_check.hpp"
#include "procpool/chunk_format.hpp"
#include "procpool/frame_assembler.hpp"
#include "procpool/frame_limits.hpp"
#include "procpool/ring_data.hpp"
#include "procpool/ring_reader.hpp"
#include "procpool/ring_writer.hpp"
#include "procpool/wire_format.hpp"

namespace procpool::fuzz {
namespace {

constexpr std::size_t kHeaderSize = sizeof(FrameHeader);

bool same_bytes(std::span<const std::byte> a, std::span<const std::byte> b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin());
}

bool same_header(const FrameHeader& a, const FrameHeader& b) {
  return a.version == b.version && a.type == b.type && a.flags == b.flags &&
         a.handler_id == b.handler_id && a.task_id == b.task_id &&
         a.payload_size == b.payload_size && a.attempt == b.attempt;
}

// docs/protocol.md's frame header table: what decode_frame must answer for `record`.
DecodeStatus expected_frame_status(std::span<const std::byte> record) {
  if (record.size() < kHeaderSize) return DecodeStatus::kTooShort;
  ByteSource in(record);
  const std::uint8_t version = in.u8();
  const std::uint8_t type = in.u8();
  const std::uint16_t flags = in.u16();
  in.u32();  // handler_id
  in.u64();  // task_id
  const std::uint32_t payload_size = in.u32();
  if (version != kWireVersion) return DecodeStatus::kBadVersion;
  if (type < 1 || type > kMaxFrameType || type == 6) return DecodeStatus::kBadType;  // 6: retired
  if ((flags & ~(kFrameMore | kFrameChunk | kFrameHigh | kFrameLow | kFrameProgress |
                 kFrameErrorDetail)) != 0) {
    return DecodeStatus::kBadFlags;
  }
  if ((flags & kFrameHigh) != 0 && (flags & kFrameLow) != 0) return DecodeStatus::kBadFlags;
  if ((flags & kFrameChunk) != 0 && (flags & kFrameProgress) != 0) return DecodeStatus::kBadFlags;
  if (payload_size != record.size() - kHeaderSize) return DecodeStatus::kLengthMismatch;
  return DecodeStatus::kOk;
}

// kReady: names as u32 length + bytes, each 1..kMaxHandlerName bytes, at most kMaxHandlers.
bool expected_handler_names_ok(std::span<const std::byte> payload) {
  std::size_t count = 0;
  std::size_t at = 0;
  while (at != payload.size()) {
    if (payload.size() - at < 4) return false;
    ByteSource in(payload.subspan(at, 4));
    const std::uint32_t length = in.u32();
    at += 4;
    if (length == 0 || length > kMaxHandlerName || length > payload.size() - at) return false;
    if (++count > kMaxHandlers) return false;
    at += length;
  }
  return true;
}

void check_handler_names(std::span<const std::byte> payload) {
  std::vector<std::string> names;
  const bool ok = decode_handler_names(payload, names);
  PROCPOOL_FUZZ_CHECK(ok == expected_handler_names_ok(payload));
  if (!ok) return;
  PROCPOOL_FUZZ_CHECK(names.size() <= kMaxHandlers);
  for (const std::string& name : names) {
    PROCPOOL_FUZZ_CHECK(!name.empty() && name.size() <= kMaxHandlerName);
  }
  const std::string encoded = encode_handler_names(names);
  PROCPOOL_FUZZ_CHECK(same_bytes(as_bytes(encoded), payload));
  std::vector<std::string> again;
  PROCPOOL_FUZZ_CHECK(decode_handler_names(as_bytes(encoded), again));
  PROCPOOL_FUZZ_CHECK(again == names);
}

// kError: u32 WorkerErrorCode (1..kMaxWorkerErrorCode) + message.
void check_error(std::span<const std::byte> payload) {
  WorkerErrorCode code{};
  std::string_view message;
  const bool ok = decode_error(payload, code, message);
  const std::uint32_t raw = ByteSource(payload).u32();
  PROCPOOL_FUZZ_CHECK(ok == (payload.size() >= 4 && raw >= 1 && raw <= kMaxWorkerErrorCode));
  if (!ok) return;
  PROCPOOL_FUZZ_CHECK(static_cast<std::uint32_t>(code) == raw);
  PROCPOOL_FUZZ_CHECK(same_bytes(as_bytes(message), payload.subspan(4)));
  const std::string encoded = encode_error(code, message);
  PROCPOOL_FUZZ_CHECK(same_bytes(as_bytes(encoded), payload));
  WorkerErrorCode code_again{};
  std::string_view message_again;
  PROCPOOL_FUZZ_CHECK(decode_error(as_bytes(encoded), code_again, message_again));
  PROCPOOL_FUZZ_CHECK(code_again == code && message_again == message);
}

// kError with kFrameErrorDetail: the 24-byte head (code, type length, has_code, zero, i64
// code), the type name (at most kMaxExceptionType bytes), the message.
void check_error_detail(std::span<const std::byte> payload) {
  ErrorDetail detail;
  const bool ok = decode_error_detail(payload, detail);
  ByteSource in(payload);
  const std::uint32_t code = in.u32(), type_size = in.u32(), has_code = in.u32(), zero = in.u32();
  const auto user_code = static_cast<std::int64_t>(in.u64());
  const bool valid =
      payload.size() >= kErrorDetailHead && code >= 1 && code <= kMaxWorkerErrorCode &&
      has_code <= 1 && zero == 0 && type_size <= kMaxExceptionType &&
      type_size <= payload.size() - kErrorDetailHead && (has_code == 1 || user_code == 0);
  PROCPOOL_FUZZ_CHECK(ok == valid);
  if (!ok) return;
  PROCPOOL_FUZZ_CHECK(static_cast<std::uint32_t>(detail.code) == code);
  PROCPOOL_FUZZ_CHECK(detail.type.size() == type_size && detail.has_code == (has_code == 1));
  PROCPOOL_FUZZ_CHECK(detail.user_code == user_code);
  PROCPOOL_FUZZ_CHECK(
      same_bytes(as_bytes(detail.message), payload.subspan(kErrorDetailHead + type_size)));
  const std::string encoded = encode_error_detail(detail);
  PROCPOOL_FUZZ_CHECK(same_bytes(as_bytes(encoded), payload));
}

// kInit: u64 maximum payload + the pool's worker data.
void check_init(std::span<const std::byte> payload) {
  std::uint64_t max_payload = 0;
  std::string_view worker_data;
  const bool ok = decode_init(payload, max_payload, worker_data);
  PROCPOOL_FUZZ_CHECK(ok == (payload.size() >= 8));
  if (!ok) return;
  PROCPOOL_FUZZ_CHECK(max_payload == ByteSource(payload).u64());
  PROCPOOL_FUZZ_CHECK(same_bytes(as_bytes(worker_data), payload.subspan(8)));
  const std::string encoded = encode_init(max_payload, worker_data);
  PROCPOOL_FUZZ_CHECK(same_bytes(as_bytes(encoded), payload));
  std::uint64_t max_again = 0;
  std::string_view data_again;
  PROCPOOL_FUZZ_CHECK(decode_init(as_bytes(encoded), max_again, data_again));
  PROCPOOL_FUZZ_CHECK(max_again == max_payload && data_again == worker_data);
}

// A chunk (chunk_format.hpp) in both layouts: ChunkReader must agree with an independent walk
// of docs/protocol.md's layout (count, then per item optional u32 code, u32 length, bytes), never
// point outside the payload, and a complete chunk must encode again byte for byte.
void check_chunk(std::span<const std::byte> payload, bool results) {
  const std::string_view text(reinterpret_cast<const char*>(payload.data()), payload.size());
  // The independent walk.
  bool expected_complete = payload.size() >= 4;
  std::uint32_t count = 0;
  std::size_t at = 4;
  std::uint32_t walked = 0;
  if (expected_complete) {
    ByteSource head(payload);
    count = head.u32();
    for (; walked < count; ++walked) {
      const std::size_t fixed = results ? 8 : 4;
      if (payload.size() - at < fixed) break;
      ByteSource item(payload.subspan(at));
      if (results) item.u32();
      const std::uint32_t length = item.u32();
      if (payload.size() - at - fixed < length) break;
      at += fixed + length;
    }
    expected_complete = walked == count && at == payload.size();
  }
  ChunkReader reader(text);
  std::string again;
  ChunkWriter writer(again);
  writer.begin();
  std::uint32_t read = 0;
  std::uint32_t code = 0;
  for (std::string_view bytes; results ? reader.next_result(code, bytes) : reader.next(bytes);) {
    PROCPOOL_FUZZ_CHECK(bytes.data() >= text.data() &&
                        bytes.data() + bytes.size() <= text.data() + text.size());
    if (results) {
      writer.add_result(code, bytes);
    } else {
      writer.add(bytes);
    }
    ++read;
  }
  PROCPOOL_FUZZ_CHECK(reader.complete() == expected_complete);
  PROCPOOL_FUZZ_CHECK(reader.malformed() == !expected_complete);
  if (!expected_complete) return;
  PROCPOOL_FUZZ_CHECK(read == count);
  PROCPOOL_FUZZ_CHECK(again == text);
}

// Encodes a decoded frame again with write_frame into a ring just large enough, reads it back,
// and checks that the record is the original one and decodes to the same frame.
void check_frame_round_trip(std::span<const std::byte> record, const FrameHeader& header,
                            std::span<const std::byte> payload) {
  const std::uint64_t capacity =
      std::bit_ceil(std::max(kMinRingCapacity, 2 * (record.size() + kRecordHeaderSize)));
  RingData ring;
  std::vector<std::byte> bytes(capacity);
  RingWriter writer(ring, bytes);
  PROCPOOL_FUZZ_CHECK(write_frame(writer, header, payload) == WriteStatus::kOk);
  writer.publish();

  RingReader reader(ring, bytes);
  std::span<const std::byte> written;
  PROCPOOL_FUZZ_CHECK(reader.try_read(written) == ReadStatus::kOk);
  PROCPOOL_FUZZ_CHECK(same_bytes(written, record));
  FrameHeader header_again;
  std::span<const std::byte> payload_again;
  PROCPOOL_FUZZ_CHECK(decode_frame(written, header_again, payload_again) == DecodeStatus::kOk);
  PROCPOOL_FUZZ_CHECK(same_header(header_again, header));
  PROCPOOL_FUZZ_CHECK(same_bytes(payload_again, payload));
  PROCPOOL_FUZZ_CHECK(reader.try_read(written) == ReadStatus::kEmpty);
}

void check_frame(std::span<const std::byte> record) {
  FrameHeader header;
  std::span<const std::byte> payload;
  const DecodeStatus status = decode_frame(record, header, payload);
  PROCPOOL_FUZZ_CHECK(status == expected_frame_status(record));
  PROCPOOL_FUZZ_CHECK(!to_string(status).empty());
  if (status != DecodeStatus::kOk) return;
  // The payload is the rest of the record, in place.
  PROCPOOL_FUZZ_CHECK(payload.data() == record.data() + kHeaderSize);
  PROCPOOL_FUZZ_CHECK(payload.size() == header.payload_size);
  check_frame_round_trip(record, header, payload);
  // What the receiver of each type parses next.
  if ((header.flags & kFrameChunk) != 0 && (header.flags & kFrameMore) == 0) {
    check_chunk(payload, header.type == FrameType::kResult);
  }
  switch (header.type) {
    case FrameType::kReady:
      check_handler_names(payload);
      break;
    case FrameType::kError:
      if ((header.flags & kFrameErrorDetail) != 0) {
        check_error_detail(payload);
      } else {
        check_error(payload);
      }
      break;
    case FrameType::kInit:
      check_init(payload);
      break;
    default:
      break;
  }
}

// The reassembly rules, read from docs/protocol.md independently of FrameAssembler: what add()
// must answer, and the payload it must then hold.
class AssemblyModel {
 public:
  explicit AssemblyModel(std::uint64_t max_payload) : max_payload_(max_payload) {}

  AssemblyStatus add(const FrameHeader& h, std::span<const std::byte> payload) {
    const bool more = (h.flags & kFrameMore) != 0;
    const std::string_view bytes(reinterpret_cast<const char*>(payload.data()), payload.size());
    if (!open_) {
      if (h.type != FrameType::kTask && h.type != FrameType::kResult &&
          h.type != FrameType::kError && h.type != FrameType::kProgress) {
        return AssemblyStatus::kNotAssembled;
      }
      if (more && bytes.empty()) return AssemblyStatus::kEmptyFragment;
      // An error's largest form: the 24-byte detailed head, a 256-byte type and 64 KiB of text.
      limit_ = h.type == FrameType::kError ? 24 + 256 + 64 * 1024 : max_payload_;
      if (bytes.size() > limit_) return AssemblyStatus::kTooLarge;
      first_ = h;
      joined_.assign(bytes);
      open_ = more;
      return more ? AssemblyStatus::kIncomplete : AssemblyStatus::kComplete;
    }
    open_ = false;  // any verdict below but kIncomplete ends the payload
    if (h.task_id != first_.task_id) return AssemblyStatus::kTaskChanged;
    if (h.type != first_.type) return AssemblyStatus::kTypeChanged;
    if (h.handler_id != first_.handler_id || h.attempt != first_.attempt) {
      return AssemblyStatus::kHeaderChanged;
    }
    if (((h.flags ^ first_.flags) & kFrameChunk) != 0) return AssemblyStatus::kChunkChanged;
    if (more && bytes.empty()) return AssemblyStatus::kEmptyFragment;
    if (joined_.size() + bytes.size() > limit_) return AssemblyStatus::kTooLarge;
    joined_.append(bytes);
    open_ = more;
    return more ? AssemblyStatus::kIncomplete : AssemblyStatus::kComplete;
  }

  const FrameHeader& first() const noexcept { return first_; }
  const std::string& joined() const noexcept { return joined_; }

 private:
  std::uint64_t max_payload_;
  std::uint64_t limit_ = 0;
  bool open_ = false;
  FrameHeader first_{};
  std::string joined_;
};

void check_assembly(std::span<const std::byte> input) {
  ByteSource in(input);
  const bool copy = (in.u8() & 1) != 0;
  const std::uint64_t max_payload = in.u16();
  FrameAssembler assembler(max_payload, copy ? FrameAssembler::SingleFrame::kCopy
                                             : FrameAssembler::SingleFrame::kInPlace);
  AssemblyModel model(max_payload);
  std::vector<std::string> kept;  // taken payloads, recycled later, as the worker does
  while (!in.empty()) {
    const std::span<const std::byte> record = in.take(in.u16());
    FrameHeader header;
    std::span<const std::byte> payload;
    if (decode_frame(record, header, payload) != DecodeStatus::kOk) continue;
    const AssemblyStatus status = assembler.add(header, payload);
    PROCPOOL_FUZZ_CHECK(status == model.add(header, payload));
    PROCPOOL_FUZZ_CHECK(!to_string(status).empty());
    PROCPOOL_FUZZ_CHECK(assembler.assembling() == (status == AssemblyStatus::kIncomplete));
    if (status != AssemblyStatus::kComplete) {
      PROCPOOL_FUZZ_CHECK(assembler.payload().empty());
      continue;
    }
    PROCPOOL_FUZZ_CHECK(assembler.text() == model.joined());
    PROCPOOL_FUZZ_CHECK(assembler.payload().size() <=
                        frame_payload_limit(assembler.header().type, max_payload));
    const FrameHeader& whole = assembler.header();
    PROCPOOL_FUZZ_CHECK(
        whole.type == model.first().type && whole.task_id == model.first().task_id &&
        whole.handler_id == model.first().handler_id && whole.attempt == model.first().attempt &&
        whole.flags == (model.first().flags & ~kFrameMore));
    // In place only for a single frame the assembler was not told to copy: then it is the
    // record's own payload.
    PROCPOOL_FUZZ_CHECK(assembler.in_place() == (!copy && payload.size() == model.joined().size() &&
                                                 assembler.payload().data() == payload.data()));
    if (!assembler.in_place() && (header.task_id & 1) != 0) {
      kept.push_back(assembler.take());
      PROCPOOL_FUZZ_CHECK(kept.back() == model.joined());
    }
    if (kept.size() > 2) {
      assembler.recycle(std::move(kept.front()));
      kept.erase(kept.begin());
    }
  }
}

}  // namespace
}  // namespace procpool::fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace procpool::fuzz;
  const std::span<const std::byte> input = std::as_bytes(std::span<const std::uint8_t>(data, size));
  check_frame(input);
  check_assembly(input);
  // The payload codecs on their own too, so that the fuzzer need not build a valid header first.
  check_handler_names(input);
  check_error(input);
  check_error_detail(input);
  check_init(input);
  check_chunk(input, false);
  check_chunk(input, true);
  return 0;
}
