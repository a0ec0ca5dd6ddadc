#pragma once

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

}  // namespace procpool::detail
