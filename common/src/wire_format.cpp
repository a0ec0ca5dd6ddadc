#include "procpool/wire_format.hpp"

#include <cstring>  // std::memcpy

namespace procpool {

std::string_view to_string(DecodeStatus status) noexcept {
  switch (status) {
    case DecodeStatus::kOk:
      return "ok";
    case DecodeStatus::kTooShort:
      return "frame shorter than its header";
    case DecodeStatus::kBadVersion:
      return "unknown wire version";
    case DecodeStatus::kBadType:
      return "unknown frame type";
    case DecodeStatus::kBadFlags:
      return "unknown frame flags";
    case DecodeStatus::kLengthMismatch:
      return "frame length disagrees with its record";
  }
  return "unknown decode status";
}

DecodeStatus decode_frame(std::span<const std::byte> record, FrameHeader& header,
                          std::span<const std::byte>& payload) noexcept {
  if (record.size() < sizeof(FrameHeader)) return DecodeStatus::kTooShort;
  FrameHeader local;
  std::memcpy(&local, record.data(), sizeof local);  // the one read of the header
  if (local.version != kWireVersion) return DecodeStatus::kBadVersion;
  const auto type = static_cast<std::uint8_t>(local.type);
  if (type == 0 || type > kMaxFrameType) return DecodeStatus::kBadType;
  if ((local.flags & ~kKnownFrameFlags) != 0) return DecodeStatus::kBadFlags;
  if (local.payload_size != record.size() - sizeof(FrameHeader)) {
    return DecodeStatus::kLengthMismatch;
  }
  header = local;
  payload = record.subspan(sizeof(FrameHeader));
  return DecodeStatus::kOk;
}

WriteStatus write_frame(RingWriter& writer, FrameHeader header,
                        std::span<const std::byte> payload) noexcept {
  if (payload.size() > writer.max_payload() - sizeof(FrameHeader)) return WriteStatus::kTooLarge;
  const auto size = static_cast<std::uint32_t>(sizeof(FrameHeader) + payload.size());
  std::span<std::byte> room;
  const WriteStatus status = writer.try_reserve(size, room);
  if (status != WriteStatus::kOk) return status;
  header.payload_size = static_cast<std::uint32_t>(payload.size());
  std::memcpy(room.data(), &header, sizeof header);
  if (!payload.empty()) std::memcpy(room.data() + sizeof header, payload.data(), payload.size());
  writer.commit(size);
  return WriteStatus::kOk;
}

}  // namespace procpool
