#include "chunk_answers.hpp"

#include "procpool/chunk_format.hpp"
#include "procpool/wire_format.hpp"

namespace procpool::detail {

std::int64_t check_chunk_results(std::string_view body, std::uint32_t items, bool detailed,
                                 bool& out_of_memory) noexcept {
  ChunkReader reader(body);
  if (reader.count() != items) return -1;
  std::int64_t failures = 0;
  std::uint32_t code = 0;
  ErrorDetail detail;
  for (std::string_view bytes; reader.next_result(code, bytes);) {
    if (code > kMaxWorkerErrorCode) return -1;
    if (code != 0) {
      ++failures;
      if (detailed && (!decode_error_detail(as_bytes(bytes), detail) ||
                       static_cast<std::uint32_t>(detail.code) != code)) {
        return -1;
      }
    }
    if (code == static_cast<std::uint32_t>(WorkerErrorCode::kMemoryLimit)) out_of_memory = true;
  }
  return reader.complete() ? failures : -1;
}

std::string detailed_chunk_results(std::string_view body) {
  std::string out;
  ChunkWriter writer(out);
  writer.begin();
  ChunkReader reader(body);
  std::uint32_t code = 0;
  for (std::string_view bytes; reader.next_result(code, bytes);) {
    if (code == 0) {
      writer.add_result(0, bytes);
      continue;
    }
    ErrorDetail detail;
    detail.code = static_cast<WorkerErrorCode>(code);
    detail.message = bytes;
    writer.add_result(code, encode_error_detail(detail));
  }
  return out;
}

}  // namespace procpool::detail
