#include "procpool/frame_assembler.hpp"

#include <limits>   // std::numeric_limits
#include <utility>  // std::move, std::exchange

#include "procpool/frame_limits.hpp"

namespace procpool {
namespace {

// Buffers kept for reuse: enough for every task a worker holds on board at once, and none so
// large that an idle worker keeps a burst's memory. Larger ones: only the largest, one, kept
// for the next fragmented payload (a fresh buffer for one would be grown by doubling, each step
// a new mapping faulted in page by page: most of the copy path's time at 64 MiB).
constexpr std::size_t kMaxSpareBuffers = 64;
constexpr std::size_t kMaxSpareCapacity = 1024 * 1024;

bool carries_task_data(FrameType type) noexcept {
  return type == FrameType::kTask || type == FrameType::kResult || type == FrameType::kError ||
         type == FrameType::kProgress;
}

}  // namespace

std::string_view to_string(AssemblyStatus status) noexcept {
  switch (status) {
    case AssemblyStatus::kComplete:
      return "complete";
    case AssemblyStatus::kIncomplete:
      return "incomplete";
    case AssemblyStatus::kNotAssembled:
      return "fragmented frame of a type without task data";
    case AssemblyStatus::kTaskChanged:
      return "fragments of two tasks interleaved";
    case AssemblyStatus::kTypeChanged:
      return "fragments of one payload with different frame types";
    case AssemblyStatus::kHeaderChanged:
      return "fragments of one task with different handler ids or attempts";
    case AssemblyStatus::kChunkChanged:
      return "fragments of one payload disagree on kFrameChunk";
    case AssemblyStatus::kEmptyFragment:
      return "empty fragment before the last";
    case AssemblyStatus::kTooLarge:
      return "payload above max_payload";
  }
  return "unknown assembly status";
}

FrameAssembler::FrameAssembler(std::uint64_t max_payload, SingleFrame single)
    : max_payload_(max_payload), single_(single) {
  spare_.reserve(kMaxSpareBuffers);  // recycle() then never allocates
}

AssemblyStatus FrameAssembler::add(const FrameHeader& header, std::span<const std::byte> payload) {
  complete_ = {};
  in_place_ = false;
  const bool more = (header.flags & kFrameMore) != 0;
  if (!assembling_) {
    const AssemblyStatus started = begin(header, payload);
    if (started != AssemblyStatus::kIncomplete || more) return started;
  } else {
    if (header.task_id != header_.task_id) return fail(AssemblyStatus::kTaskChanged);
    if (header.type != header_.type) return fail(AssemblyStatus::kTypeChanged);
    if (header.handler_id != header_.handler_id || header.attempt != header_.attempt) {
      return fail(AssemblyStatus::kHeaderChanged);
    }
    if ((header.flags & kFrameChunk) != (header_.flags & kFrameChunk)) {
      return fail(AssemblyStatus::kChunkChanged);
    }
    if (more && payload.empty()) return fail(AssemblyStatus::kEmptyFragment);
    if (payload.size() > limit_ - buffer_.size()) return fail(AssemblyStatus::kTooLarge);
    buffer_.append(reinterpret_cast<const char*>(payload.data()), payload.size());
    if (more) return AssemblyStatus::kIncomplete;
  }
  assembling_ = false;
  constexpr std::size_t kMax32 = std::numeric_limits<std::uint32_t>::max();
  header_.payload_size =
      static_cast<std::uint32_t>(buffer_.size() < kMax32 ? buffer_.size() : kMax32);
  complete_ = std::as_bytes(std::span<const char>(buffer_.data(), buffer_.size()));
  return AssemblyStatus::kComplete;
}

// The first (or only) frame of a payload. Returns kIncomplete once the frame is accepted
// and, if it has to be copied, copied; kComplete for a single frame left in place.
AssemblyStatus FrameAssembler::begin(const FrameHeader& header,
                                     std::span<const std::byte> payload) {
  if (!carries_task_data(header.type)) return fail(AssemblyStatus::kNotAssembled);
  const bool more = (header.flags & kFrameMore) != 0;
  if (more && payload.empty()) return fail(AssemblyStatus::kEmptyFragment);
  const std::uint64_t limit = frame_payload_limit(header.type, max_payload_);
  if (payload.size() > limit) return fail(AssemblyStatus::kTooLarge);
  header_ = header;
  header_.flags = static_cast<std::uint16_t>(header.flags & ~kFrameMore);
  if (!more && single_ == SingleFrame::kInPlace) {
    header_.payload_size = static_cast<std::uint32_t>(payload.size());
    complete_ = payload;
    in_place_ = true;
    return AssemblyStatus::kComplete;
  }
  limit_ = limit;
  if (more && large_spare_.capacity() > buffer_.capacity()) {
    std::string replaced = std::exchange(buffer_, std::move(large_spare_));
    large_spare_ = std::string();
    recycle(std::move(replaced));
  } else if (buffer_.capacity() <= std::string().capacity() && !spare_.empty()) {
    buffer_ = std::move(spare_.back());  // the buffer went out with take(): reuse a returned one
    spare_.pop_back();
  }
  buffer_.clear();
  buffer_.append(reinterpret_cast<const char*>(payload.data()), payload.size());
  assembling_ = more;
  return AssemblyStatus::kIncomplete;
}

AssemblyStatus FrameAssembler::fail(AssemblyStatus status) noexcept {
  reset();
  return status;
}

void FrameAssembler::reset() noexcept {
  assembling_ = false;
  in_place_ = false;
  complete_ = {};
  buffer_.clear();
}

std::string FrameAssembler::take() {
  if (in_place_) return {};
  std::string out = std::move(buffer_);
  buffer_ = std::string();
  complete_ = {};
  return out;
}

void FrameAssembler::recycle(std::string buffer) {
  // A buffer that never left the small-string storage holds nothing worth keeping.
  if (buffer.capacity() <= std::string().capacity()) return;
  if (buffer.capacity() > kMaxSpareCapacity) {
    if (buffer.capacity() > large_spare_.capacity()) {
      buffer.clear();
      large_spare_ = std::move(buffer);
    }
    return;
  }
  if (spare_.size() == kMaxSpareBuffers) return;
  buffer.clear();
  spare_.push_back(std::move(buffer));
}

}  // namespace procpool
