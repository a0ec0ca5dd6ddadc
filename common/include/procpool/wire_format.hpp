#pragma once
#include "procpool/detail/require_cxx20.hpp"

#include <cstddef>      // std::byte
#include <cstdint>      // fixed-width integers
#include <span>         // std::span
#include <string>       // std::string
#include <string_view>  // std::string_view
#include <vector>       // std::vector

#include "procpool/ring_writer.hpp"

namespace procpool {

// Frames are the messages of the runtime, one per ring record: a fixed 24-byte header followed by
// the payload. docs/protocol.md describes every type, who sends it and what its payload holds.
inline constexpr std::uint8_t kWireVersion = 3;

enum class FrameType : std::uint8_t {
  kReady = 1,   // worker -> supervisor: handlers registered; payload = handler names
  kTask = 2,    // supervisor -> worker: run handler `handler_id` on the payload
  kResult = 3,  // worker -> supervisor: task `task_id` succeeded; payload = result
  kError = 4,   // worker -> supervisor: task `task_id` failed; payload = ErrorCode + message
  kCancel = 5,  // supervisor -> worker: drop task `task_id` if it has not started
  // 6 was a heartbeat frame nobody sent (liveness is WorkerControl::heartbeat_ms): rejected.
  kShutdown = 7,  // supervisor -> worker: finish the current task, then exit 0
  kInit = 8,      // supervisor -> worker, first frame: payload = the pool's worker data
  // worker -> supervisor: task `task_id` emitted a partial result or progress (Task::emit),
  // before its kResult/kError; payload = the bytes. Sent only for a task whose kTask frame had
  // kFrameProgress. Added without a version bump: an older supervisor rejects it as a bad type.
  kProgress = 9,
};
inline constexpr std::uint8_t kMaxFrameType = 9;

// True for the values of FrameType above; decode_frame rejects every other type byte.
constexpr bool is_known_frame_type(std::uint8_t type) noexcept {
  return type >= 1 && type <= kMaxFrameType && type != 6;
}

// Flag bits. Unknown bits are a protocol error: a newer peer must bump kWireVersion instead.
enum FrameFlag : std::uint16_t {
  // More fragments of this payload follow in the next frames of the same task. A payload larger
  // than one record travels as consecutive fragments, all with the same type and task id, the
  // last one without this flag; the receiver appends them in order.
  kFrameMore = 1U << 0,
  // A chunked task (kTask) or its answers (kResult): the payload is a chunk of many items
  // (chunk_format.hpp). Every fragment of a chunked payload carries it.
  kFrameChunk = 1U << 1,
  // kTask: the task's priority, High or Low (neither: Normal; both is a protocol error). The
  // worker serves the tasks it holds highest priority first, so a High task dispatched behind
  // Low ones already in its ring overtakes every one that has not started.
  kFrameHigh = 1U << 2,
  kFrameLow = 1U << 3,
  // kTask: the submitter listens for the task's progress (TaskOptions::on_progress), so
  // Task::emit sends kProgress frames; without it emit does nothing. Never with kFrameChunk.
  kFrameProgress = 1U << 4,
  // kError: the payload is an ErrorDetail (encode_error_detail), which adds the type of what the
  // handler threw and an optional code to the message. Without it: encode_error's payload.
  kFrameErrorDetail = 1U << 5,
};
inline constexpr std::uint16_t kKnownFrameFlags =
    kFrameMore | kFrameChunk | kFrameHigh | kFrameLow | kFrameProgress | kFrameErrorDetail;
inline constexpr std::uint16_t kFramePriorityFlags = kFrameHigh | kFrameLow;

// A task frame's priority as a rank: 0 High, 1 Normal, 2 Low (lower is served first). The
// values match procpool::Priority's.
constexpr unsigned frame_priority_rank(std::uint16_t flags) noexcept {
  return (flags & kFrameHigh) != 0 ? 0U : (flags & kFrameLow) != 0 ? 2U : 1U;
}
constexpr std::uint16_t frame_priority_flags(unsigned rank) noexcept {
  if (rank == 0) return kFrameHigh;
  return rank == 2 ? std::uint16_t{kFrameLow} : std::uint16_t{0};
}

// Error classes a worker can report in a kError frame (first 4 bytes of its payload).
enum class WorkerErrorCode : std::uint32_t {
  kHandlerFailed = 1,    // the handler threw; message = what()
  kUnknownHandler = 2,   // no handler with that id
  kCancelled = 3,        // stopped on a kCancel frame
  kPayloadTooLarge = 4,  // the result exceeds the pool's maximum payload
  kMemoryLimit = 5,      // the handler ran out of memory (std::bad_alloc, e.g. at RLIMIT_DATA)
};
inline constexpr std::uint32_t kMaxWorkerErrorCode = 5;

struct FrameHeader {
  std::uint8_t version = kWireVersion;
  FrameType type{};  // 0, which decode_frame rejects: a sender always sets the type
  std::uint16_t flags = 0;
  std::uint32_t handler_id = 0;  // kTask: index into the worker's kReady handler list
  std::uint64_t task_id = 0;     // kTask/kResult/kError/kCancel: the supervisor's task id
  std::uint32_t payload_size = 0;
  std::uint32_t attempt = 0;  // kTask: 1-based dispatch attempt of this task
};
static_assert(sizeof(FrameHeader) == 24, "FrameHeader is part of the wire format");

enum class DecodeStatus : std::uint8_t {
  kOk,
  kTooShort,        // record shorter than a frame header
  kBadVersion,      // version != kWireVersion
  kBadType,         // not is_known_frame_type()
  kBadFlags,        // unknown flag bits
  kLengthMismatch,  // payload_size disagrees with the record's length
};

std::string_view to_string(DecodeStatus status) noexcept;

// Decodes one ring record. Copies the header out of shared memory once, validates it, and points
// `payload` at the bytes after it (still shared memory: copy before parsing).
DecodeStatus decode_frame(std::span<const std::byte> record, FrameHeader& header,
                          std::span<const std::byte>& payload) noexcept;

// Writes one frame as one record (not yet published). `header.payload_size` is set from
// `payload`. Returns the ring's status: kTooLarge if header + payload exceed the ring's maximum.
WriteStatus write_frame(RingWriter& writer, FrameHeader header,
                        std::span<const std::byte> payload) noexcept;

inline std::span<const std::byte> as_bytes(std::string_view text) noexcept {
  return std::as_bytes(std::span<const char>(text.data(), text.size()));
}

// kReady payload: each handler name as u32 length + bytes. Names are at most kMaxHandlerName
// bytes and a worker has at most kMaxHandlers; decoding enforces both.
inline constexpr std::size_t kMaxHandlers = 4096;
inline constexpr std::size_t kMaxHandlerName = 256;
std::string encode_handler_names(const std::vector<std::string>& names);
// Returns false (and leaves `names` unspecified) if the payload is malformed.
bool decode_handler_names(std::span<const std::byte> payload, std::vector<std::string>& names);

// kInit payload: u64 maximum payload size (either direction) + the pool's worker data.
std::string encode_init(std::uint64_t max_payload, std::string_view worker_data);
bool decode_init(std::span<const std::byte> payload, std::uint64_t& max_payload,
                 std::string_view& worker_data);

// kError payload: u32 WorkerErrorCode + message bytes.
std::string encode_error(WorkerErrorCode code, std::string_view message);
// Returns false if the payload is shorter than the code or the code is unknown.
bool decode_error(std::span<const std::byte> payload, WorkerErrorCode& code,
                  std::string_view& message);

// kError with kFrameErrorDetail: a 24-byte head (u32 WorkerErrorCode, u32 type length, u32
// has_code 0 or 1, u32 zero, i64 code, 0 without one), the type name, then the message.
inline constexpr std::size_t kErrorDetailHead = 24;
// The type name is cut to this by the worker; decoding refuses a longer one.
inline constexpr std::size_t kMaxExceptionType = 256;
struct ErrorDetail {
  WorkerErrorCode code{};
  std::string_view type;  // the exception's type, demangled ("std::invalid_argument")
  bool has_code = false;  // the handler threw a procpool::TaskFailure with user_code
  std::int64_t user_code = 0;
  std::string_view message;
};
std::string encode_error_detail(const ErrorDetail& detail);
// Returns false (and leaves `detail` unspecified) if any field of the head is out of range or
// the type runs past the payload. The views point into `payload`.
bool decode_error_detail(std::span<const std::byte> payload, ErrorDetail& detail);

}  // namespace procpool
