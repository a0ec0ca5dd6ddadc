#pragma once

#include <cstdint>      // codes
#include <optional>     // the handler's code
#include <string>       // messages
#include <string_view>  // item bytes

#include "procpool/task_error.hpp"
#include "procpool/wire_format.hpp"

namespace procpool::detail {

// The pool's error kind for a worker's error code (codes are validated before this).
inline TaskError::Kind kind_of(WorkerErrorCode code) noexcept {
  switch (code) {
    case WorkerErrorCode::kUnknownHandler:
      return TaskError::Kind::UnknownHandler;
    case WorkerErrorCode::kCancelled:
      return TaskError::Kind::Cancelled;
    case WorkerErrorCode::kPayloadTooLarge:
      return TaskError::Kind::PayloadTooLarge;
    case WorkerErrorCode::kMemoryLimit:
      return TaskError::Kind::MemoryLimit;
    case WorkerErrorCode::kHandlerFailed:
      break;
  }
  return TaskError::Kind::HandlerError;
}

// `error` with what the worker's detailed report says of the exception: its type and, for a
// procpool::TaskFailure, its code.
inline TaskError with_report(TaskError error, const ErrorDetail& detail) {
  std::optional<std::int64_t> user_code;
  if (detail.has_code) user_code = detail.user_code;
  error.with_exception(std::string(detail.type), user_code);
  return error;
}

// A failed item of a chunk answer, whose bytes are an ErrorDetail encoding (checked by
// PoolCore::check_chunk_results, which also puts an older worker's plain messages in that form).
inline TaskError item_error(std::uint32_t code, std::string_view bytes, int pid) {
  ErrorDetail detail;
  if (!decode_error_detail(as_bytes(bytes), detail)) detail.message = bytes;  // checked before
  return with_report(
      TaskError(kind_of(static_cast<WorkerErrorCode>(code)), std::string(detail.message), pid),
      detail);
}

}  // namespace procpool::detail
