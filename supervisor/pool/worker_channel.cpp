#include "worker_channel.hpp"

#include <sys/eventfd.h>  // eventfd_read

#include <algorithm>  // std::min

#include "epoll_tags.hpp"
#include "procpool/frame_limits.hpp"

namespace procpool::detail {
namespace {

// The smallest record the SDK rings the doorbell for: a frame without payload.
constexpr std::uint64_t kMinFrameRecord = ring_record_footprint(sizeof(FrameHeader));

// The pool's own words for the assembly violations its tests and users already know.
std::string_view answer_violation_text(AssemblyStatus status) noexcept {
  switch (status) {
    case AssemblyStatus::kTaskChanged:
      return "result fragments interleaved";
    case AssemblyStatus::kTooLarge:
      return "result above max_payload";
    default:
      return to_string(status);
  }
}

}  // namespace

WorkerChannel::WorkerChannel(const SegmentConfig& config, std::uint64_t incarnation,
                             std::uint64_t max_payload, std::string_view worker_data)
    : segment_(Segment::create(config, incarnation)),
      to_worker_(segment_.supervisor_writer()),
      from_worker_(segment_.supervisor_reader()),
      assembler_(max_payload, FrameAssembler::SingleFrame::kCopy),
      doorbell_(make_eventfd()) {
  FrameHeader init;
  init.type = FrameType::kInit;
  const std::string payload = encode_init(max_payload, worker_data);
  if (write_frame(to_worker_, init, as_bytes(payload)) != WriteStatus::kOk) {
    throw Error("procpool::Pool: ring_capacity too small for the kInit frame");
  }
  to_worker_.publish();
}

void WorkerChannel::begin_task(std::uint32_t task, const FrameHeader& header) noexcept {
  writing_ = task;
  task_writer_.begin(header);
}

WorkerChannel::WriteOutcome WorkerChannel::write_task(std::span<const std::byte> payload) noexcept {
  if (writing_ == kNoTask) return WriteOutcome::kDone;
  const WriteStatus status = task_writer_.write(to_worker_, payload);
  if (status == WriteStatus::kFull) return WriteOutcome::kFull;
  writing_ = kNoTask;
  if (status == WriteStatus::kOk) return WriteOutcome::kDone;
  // kTooLarge cannot happen (the pool checks ring_capacity against the frame header), so
  // anything but kOk is the worker's doing: it moved its read position somewhere impossible.
  fault_ = {ProtocolViolation::RingCorruption, to_string(to_worker_.fault())};
  return WriteOutcome::kFault;
}

bool WorkerChannel::writable(std::span<const std::byte> payload) noexcept {
  return writing_ != kNoTask &&
         to_worker_.can_reserve(task_writer_.next_record_size(to_worker_, payload));
}

bool WorkerChannel::send_control(FrameType type, std::uint64_t task_id) noexcept {
  if (writing_ != kNoTask) return false;
  FrameHeader header;
  header.type = type;
  header.task_id = task_id;
  return write_frame(to_worker_, header, {}) == WriteStatus::kOk;
}

WorkerChannel::ReadOutcome WorkerChannel::read(Frame& frame) {
  std::span<const std::byte> record;
  for (;;) {
    const ReadStatus status = from_worker_.try_read(record);
    if (status == ReadStatus::kCorrupt) {
      return fail(ProtocolViolation::RingCorruption, to_string(from_worker_.fault()));
    }
    if (status != ReadStatus::kOk) return ReadOutcome::kEmpty;
    FrameHeader header;
    std::span<const std::byte> payload;
    const DecodeStatus decoded = decode_frame(record, header, payload);
    if (decoded != DecodeStatus::kOk) return fail(ProtocolViolation::BadFrame, to_string(decoded));
    if (header.type != FrameType::kResult && header.type != FrameType::kError &&
        header.type != FrameType::kProgress) {
      frame = {header, payload};  // the caller decides whether it may come now
      return ReadOutcome::kFrame;
    }
    const AssemblyStatus assembled = assembler_.add(header, payload);
    if (assembled == AssemblyStatus::kIncomplete) {
      // The fragment is copied out and every frame before it was handled: its bytes go back at
      // once, so the worker writes the next fragment while this one is copied.
      from_worker_.release();
      continue;
    }
    if (assembled != AssemblyStatus::kComplete) {
      return fail(assembled == AssemblyStatus::kTooLarge ? ProtocolViolation::OversizedResult
                                                         : ProtocolViolation::BadFrame,
                  answer_violation_text(assembled));
    }
    frame = {assembler_.header(), assembler_.payload()};
    return ReadOutcome::kFrame;
  }
}

WorkerChannel::ReadOutcome WorkerChannel::fail(ProtocolViolation violation,
                                               std::string_view detail) noexcept {
  fault_ = {violation, detail};
  return ReadOutcome::kFault;
}

bool WorkerChannel::take_rings() noexcept {
  eventfd_t count = 0;
  if (::eventfd_read(doorbell_.get(), &count) != 0) return false;
  rings_ += std::min<std::uint64_t>(count, ~std::uint64_t{0} - rings_);
  return true;
}

std::uint64_t WorkerChannel::traffic() const noexcept {
  return from_worker_.position() + to_worker_.read_position();
}

ChannelFault WorkerChannel::check_doorbell() noexcept {
  if (!to_worker_.check_read_position()) {
    fault_ = {ProtocolViolation::RingCorruption, to_string(to_worker_.fault())};
    return fault_;
  }
  if (rings_ > traffic() / kMinFrameRecord + kDoorbellSlack) {
    fault_ = {ProtocolViolation::DoorbellFlood, "doorbell flood"};
    return fault_;
  }
  return {};
}

}  // namespace procpool::detail
