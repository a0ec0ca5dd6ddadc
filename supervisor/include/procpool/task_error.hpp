#pragma once
#include "procpool/detail/require_cxx20.hpp"

#include <cstdint>      // std::uint8_t, std::int64_t
#include <optional>     // the handler's code
#include <string>       // std::string
#include <string_view>  // std::string_view
#include <utility>      // std::move

#include "procpool/error.hpp"

namespace procpool {

// Why a task failed. Thrown by the future's get(), handed to completion callbacks.
class TaskError : public Error {
 public:
  enum class Kind : std::uint8_t {
    HandlerError,     // the handler threw; what() holds its message
    WorkerCrashed,    // the worker died with the task on board (signal or exit code in what())
    Timeout,          // the task's timeout elapsed; the worker running it was replaced
    Cancelled,        // cancelled through its CancelSource
    QueueFull,        // the pool's queue was at max_queue and the task asked not to wait
    ShuttingDown,     // submitted after shutdown(), or still queued when the grace ran out
    UnknownHandler,   // no worker handler has that name
    PayloadTooLarge,  // the payload or the result exceeds PoolOptions::max_payload
    MemoryLimit,      // the worker ran out of memory or went above PoolOptions::max_rss_hard
    PoolFailed,       // the pool itself failed (RestartPolicy::give_up_after): what() says why
  };

  TaskError(Kind kind, const std::string& message, int worker_pid = 0)
      : Error(message), kind_(kind), worker_pid_(worker_pid) {}

  Kind kind() const noexcept { return kind_; }
  // The pid of the worker involved, or 0 if no worker was (queue full, unknown handler, ...).
  int worker_pid() const noexcept { return worker_pid_; }

  // HandlerError (and MemoryLimit from the handler's std::bad_alloc): the type of what the
  // handler threw, demangled ("std::invalid_argument", "int"); empty otherwise (and for a
  // worker built before the SDK reported it).
  const std::string& exception_type() const noexcept { return exception_type_; }
  // The code of a procpool::TaskFailure the handler threw; nullopt for any other exception.
  std::optional<std::int64_t> code() const noexcept { return code_; }
  // Sets both (the pool, from the worker's report).
  TaskError& with_exception(std::string type, std::optional<std::int64_t> code) {
    exception_type_ = std::move(type);
    code_ = code;
    return *this;
  }

 private:
  Kind kind_;
  int worker_pid_;
  std::string exception_type_;
  std::optional<std::int64_t> code_;
};

constexpr std::string_view to_string(TaskError::Kind kind) noexcept {
  switch (kind) {
    case TaskError::Kind::HandlerError:
      return "HandlerError";
    case TaskError::Kind::WorkerCrashed:
      return "WorkerCrashed";
    case TaskError::Kind::Timeout:
      return "Timeout";
    case TaskError::Kind::Cancelled:
      return "Cancelled";
    case TaskError::Kind::QueueFull:
      return "QueueFull";
    case TaskError::Kind::ShuttingDown:
      return "ShuttingDown";
    case TaskError::Kind::UnknownHandler:
      return "UnknownHandler";
    case TaskError::Kind::PayloadTooLarge:
      return "PayloadTooLarge";
    case TaskError::Kind::MemoryLimit:
      return "MemoryLimit";
    case TaskError::Kind::PoolFailed:
      return "PoolFailed";
  }
  return "Unknown";
}

}  // namespace procpool
