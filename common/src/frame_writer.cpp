#include "procpool/frame_writer.hpp"

#include <algorithm>  // std::min

#include "procpool/frame_limits.hpp"

namespace procpool {

std::uint32_t FrameWriter::next_record_size(const RingWriter& ring,
                                            std::span<const std::byte> payload) const noexcept {
  const std::size_t left = payload.size() - std::min(offset_, payload.size());
  return static_cast<std::uint32_t>(std::min(left, fragment_capacity(ring.max_payload())) +
                                    sizeof(FrameHeader));
}

WriteStatus FrameWriter::write(RingWriter& ring, std::span<const std::byte> payload) noexcept {
  if (!active_) return WriteStatus::kOk;
  if (ring.max_payload() <= sizeof(FrameHeader) || offset_ > payload.size()) {
    active_ = false;
    return WriteStatus::kTooLarge;
  }
  const std::size_t capacity = fragment_capacity(ring.max_payload());
  // do-while: an empty payload is still one (empty) frame.
  do {
    const std::size_t size = std::min(capacity, payload.size() - offset_);
    const bool last = offset_ + size == payload.size();
    FrameHeader header = header_;
    // begin() kept only the chunk and priority bits; the writer adds kFrameMore.
    header.flags = static_cast<std::uint16_t>(header_.flags | (last ? 0 : kFrameMore));
    const WriteStatus status = write_frame(ring, header, payload.subspan(offset_, size));
    if (status == WriteStatus::kFull) return status;
    if (status != WriteStatus::kOk) {
      active_ = false;
      return status;
    }
    offset_ += size;
  } while (offset_ < payload.size());
  active_ = false;
  return WriteStatus::kOk;
}

}  // namespace procpool
