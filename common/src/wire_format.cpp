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
  if (!is_known_frame_type(type)) return DecodeStatus::kBadType;
  if ((local.flags & ~kKnownFrameFlags) != 0) return DecodeStatus::kBadFlags;
  if ((local.flags & kFramePriorityFlags) == kFramePriorityFlags) return DecodeStatus::kBadFlags;
  if ((local.flags & kFrameChunk) != 0 && (local.flags & kFrameProgress) != 0) {
    return DecodeStatus::kBadFlags;  // a chunk's items stream no progress
  }
  if (local.payload_size != record.size() - sizeof(FrameHeader)) {
    return DecodeStatus::kLengthMismatch;
  }
  header = local;
  payload = record.subspan(sizeof(FrameHeader));
  return DecodeStatus::kOk;
}

std::string encode_handler_names(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& name : names) {
    const auto length = static_cast<std::uint32_t>(name.size());
    out.append(reinterpret_cast<const char*>(&length), sizeof length);
    out.append(name);
  }
  return out;
}

bool decode_handler_names(std::span<const std::byte> payload, std::vector<std::string>& names) {
  names.clear();
  while (!payload.empty()) {
    std::uint32_t length = 0;
    if (payload.size() < sizeof length) return false;
    std::memcpy(&length, payload.data(), sizeof length);
    payload = payload.subspan(sizeof length);
    if (length == 0 || length > kMaxHandlerName || length > payload.size()) return false;
    if (names.size() == kMaxHandlers) return false;
    names.emplace_back(reinterpret_cast<const char*>(payload.data()), length);
    payload = payload.subspan(length);
  }
  return true;
}

std::string encode_init(std::uint64_t max_payload, std::string_view worker_data) {
  std::string out(reinterpret_cast<const char*>(&max_payload), sizeof max_payload);
  out.append(worker_data);
  return out;
}

bool decode_init(std::span<const std::byte> payload, std::uint64_t& max_payload,
                 std::string_view& worker_data) {
  if (payload.size() < sizeof max_payload) return false;
  std::memcpy(&max_payload, payload.data(), sizeof max_payload);
  worker_data =
      std::string_view(reinterpret_cast<const char*>(payload.data()) + 8, payload.size() - 8);
  return true;
}

std::string encode_error(WorkerErrorCode code, std::string_view message) {
  const auto raw = static_cast<std::uint32_t>(code);
  std::string out(reinterpret_cast<const char*>(&raw), sizeof raw);
  out.append(message);
  return out;
}

bool decode_error(std::span<const std::byte> payload, WorkerErrorCode& code,
                  std::string_view& message) {
  std::uint32_t raw = 0;
  if (payload.size() < sizeof raw) return false;
  std::memcpy(&raw, payload.data(), sizeof raw);
  if (raw == 0 || raw > kMaxWorkerErrorCode) return false;
  code = static_cast<WorkerErrorCode>(raw);
  message = std::string_view(reinterpret_cast<const char*>(payload.data()) + sizeof raw,
                             payload.size() - sizeof raw);
  return true;
}

std::string encode_error_detail(const ErrorDetail& detail) {
  const std::uint32_t head[4] = {static_cast<std::uint32_t>(detail.code),
                                 static_cast<std::uint32_t>(detail.type.size()),
                                 detail.has_code ? 1U : 0U, 0U};
  const std::int64_t user_code = detail.has_code ? detail.user_code : 0;
  std::string out;
  out.reserve(kErrorDetailHead + detail.type.size() + detail.message.size());
  out.append(reinterpret_cast<const char*>(head), sizeof head);
  out.append(reinterpret_cast<const char*>(&user_code), sizeof user_code);
  out.append(detail.type);
  out.append(detail.message);
  return out;
}

bool decode_error_detail(std::span<const std::byte> payload, ErrorDetail& detail) {
  static_assert(4 * sizeof(std::uint32_t) + sizeof(std::int64_t) == kErrorDetailHead);
  if (payload.size() < kErrorDetailHead) return false;
  std::uint32_t head[4];
  std::memcpy(head, payload.data(), sizeof head);  // read once
  std::int64_t user_code = 0;
  std::memcpy(&user_code, payload.data() + sizeof head, sizeof user_code);
  const std::uint32_t code = head[0], type_size = head[1], has_code = head[2], zero = head[3];
  if (code == 0 || code > kMaxWorkerErrorCode || has_code > 1 || zero != 0) return false;
  if (type_size > kMaxExceptionType || type_size > payload.size() - kErrorDetailHead) {
    return false;
  }
  if (has_code == 0 && user_code != 0) return false;
  const char* bytes = reinterpret_cast<const char*>(payload.data()) + kErrorDetailHead;
  detail.code = static_cast<WorkerErrorCode>(code);
  detail.type = std::string_view(bytes, type_size);
  detail.has_code = has_code == 1;
  detail.user_code = user_code;
  detail.message =
      std::string_view(bytes + type_size, payload.size() - kErrorDetailHead - type_size);
  return true;
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
