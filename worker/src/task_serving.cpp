// Serving one task: registering handlers, running one on a task or on every item of a chunk,
// and writing its answer (fragmented when it exceeds one record).
#include <cxxabi.h>  // abi::__cxa_current_exception_type, abi::__cxa_demangle

#include <cstdlib>    // std::free
#include <exception>  // std::exception
#include <new>        // std::bad_alloc
#include <typeinfo>   // std::type_info

#include "procpool/error.hpp"
#include "procpool/frame_limits.hpp"
#include "procpool/wait_strategy.hpp"
#include "worker_runtime.hpp"

namespace procpool::detail {
namespace {

std::string too_large(std::string_view what, std::size_t size, std::uint64_t max_payload) {
  return std::string(what) + " (" + std::to_string(size) + " bytes) exceeds max_payload " +
         std::to_string(max_payload);
}

// Inside a catch block: the demangled name of the type being handled ("std::invalid_argument"),
// the mangled one if demangling fails, or "" if the ABI cannot tell.
std::string thrown_type_name() {
  const std::type_info* type = abi::__cxa_current_exception_type();
  if (type == nullptr) return {};
  int status = 0;
  char* demangled = abi::__cxa_demangle(type->name(), nullptr, nullptr, &status);
  std::string name = status == 0 && demangled != nullptr ? demangled : type->name();
  std::free(demangled);
  return name;
}

}  // namespace

void WorkerRuntime::on(std::string name, Worker::Handler handler) {
  if (running_) throw Error("Worker::on(\"" + name + "\"): register handlers before run()");
  if (name.empty() || name.size() > kMaxHandlerName) {
    throw Error("Worker::on: handler names are 1.." + std::to_string(kMaxHandlerName) + " bytes");
  }
  for (const std::string& existing : names_) {
    if (existing == name) throw Error("Worker::on: handler \"" + name + "\" registered twice");
  }
  if (names_.size() == kMaxHandlers) throw Error("Worker::on: too many handlers");
  if (!handler) throw Error("Worker::on(\"" + name + "\"): empty handler");
  names_.push_back(std::move(name));
  handlers_.push_back(std::move(handler));
}

void WorkerRuntime::reply(Task& task, std::string_view result) {
  if (task.replied_) {
    throw Error("Task::reply: task " + std::to_string(task.id_) + " replied twice");
  }
  task.replied_ = true;
  const bool fits = result.size() <= frame_payload_limit(FrameType::kResult, max_payload_);
  if (chunk_ != nullptr) {  // one item of a chunk: its answer joins the chunk's
    if (fits) {
      chunk_->add_result(0, result);
    } else {
      const std::string message = too_large("result", result.size(), max_payload_);
      ErrorDetail detail;
      detail.code = WorkerErrorCode::kPayloadTooLarge;
      detail.message = message;
      chunk_->add_result(static_cast<std::uint32_t>(detail.code), encode_error_detail(detail));
    }
    return;
  }
  if (!fits) {
    send_error(task.id_, WorkerErrorCode::kPayloadTooLarge,
               too_large("result", result.size(), max_payload_));
    return;
  }
  if (!send(FrameType::kResult, task.id_, result)) broken_ = true;
}

std::span<std::byte> WorkerRuntime::region(std::string_view name) const {
  if (const SharedRegion* region = find_region(regions_, name)) return region->bytes();
  std::string what = "Worker::region: the pool has no region named \"";
  what.append(name).append("\"");
  throw Error(what);
}

void WorkerRuntime::emit(Task& task, std::string_view data) {
  if (task.replied_) {
    throw Error("Task::emit: task " + std::to_string(task.id_) + " has replied already");
  }
  if (!task.progress_) return;  // nobody listens (a chunk's items never have one)
  if (data.size() > frame_payload_limit(FrameType::kProgress, max_payload_)) {
    throw Error("Task::emit: " + too_large("progress", data.size(), max_payload_));
  }
  // Published at once, with any answers held before it: progress is for the submitter to see
  // while the handler still runs.
  if (!send(FrameType::kProgress, task.id_, data)) {
    broken_ = true;
    return;
  }
  flush();
}

bool WorkerRuntime::serve(Pending& pending) {
  WorkerControl& control = segment_.control();
  if (cancelled_.erase(pending.id) != 0 || cancelled(pending.id)) {
    return send_error(pending.id, WorkerErrorCode::kCancelled, "cancelled before it started");
  }
  if (pending.handler >= handlers_.size()) {
    return send_error(pending.id, WorkerErrorCode::kUnknownHandler,
                      "no handler with id " + std::to_string(pending.handler));
  }
  if (pending.chunk) return serve_chunk(pending);
  Task task(*this, pending.id, pending.attempt, pending.input, pending.progress);
  control.current_task_id.store(pending.id, std::memory_order_relaxed);
  invoke(pending.handler, task, [&](const ErrorDetail& detail) { send_error(pending.id, detail); });
  control.current_task_id.store(0, std::memory_order_relaxed);
  return !broken_;
}

// Runs handler `handler` on `task`: a handler that returns without replying answers with an
// empty result; one that throws before replying ends in fail(detail): the exception's message,
// its type's name and, for a TaskFailure, its code (std::bad_alloc as kMemoryLimit).
// Task::reply() sends, or adds to the chunk being served.
template <class Fail>
void WorkerRuntime::invoke(std::uint32_t handler, Task& task, Fail&& fail) {
  ErrorDetail detail;
  std::string type, message;  // copied inside the catch: the exception dies at its end
  try {
    handlers_[handler](task);
    if (!task.replied_) reply(task, {});
    return;
  } catch (const std::bad_alloc& e) {
    detail.code = WorkerErrorCode::kMemoryLimit;
    message = e.what();
    type = thrown_type_name();
  } catch (const TaskFailure& e) {
    detail.code = WorkerErrorCode::kHandlerFailed;
    message = e.what();
    detail.has_code = true;
    detail.user_code = e.code();
    type = thrown_type_name();
  } catch (const std::exception& e) {
    detail.code = WorkerErrorCode::kHandlerFailed;
    message = e.what();
    type = thrown_type_name();
  } catch (...) {
    detail.code = WorkerErrorCode::kHandlerFailed;
    message = "an exception not derived from std::exception";
    type = thrown_type_name();
  }
  if (task.replied_) return;
  detail.type = std::string_view(type).substr(0, kMaxExceptionType);
  detail.message = std::string_view(message).substr(0, kMaxErrorMessage);
  fail(detail);
}

// A chunk: the handler runs once per item, in order; each item's answer or error goes into one
// chunk result. The chunk stops early (and fails whole, as Cancelled) if it is cancelled.
bool WorkerRuntime::serve_chunk(Pending& pending) {
  WorkerControl& control = segment_.control();
  ChunkReader items(pending.input);
  // Validate the whole chunk first (the supervisor is trusted, but a bug must not run half).
  for (std::string_view item; items.next(item);) {
  }
  if (!items.complete()) return protocol_error("malformed chunk");
  ChunkWriter out(chunk_out_);
  out.begin();
  chunk_ = &out;
  control.current_task_id.store(pending.id, std::memory_order_relaxed);
  bool cancelled_midway = false;
  ChunkReader walk(pending.input);
  for (std::string_view item; walk.next(item);) {
    if ((out.count() & 63) == 63 && cancelled(pending.id)) {
      cancelled_midway = true;
      break;
    }
    Task task(*this, pending.id, pending.attempt, item, false);
    // A failed item's bytes are its ErrorDetail, as the chunk frame's kFrameErrorDetail says.
    invoke(pending.handler, task, [&](const ErrorDetail& detail) {
      out.add_result(static_cast<std::uint32_t>(detail.code), encode_error_detail(detail));
    });
  }
  chunk_ = nullptr;
  control.current_task_id.store(0, std::memory_order_relaxed);
  if (cancelled_midway) {
    return send_error(pending.id, WorkerErrorCode::kCancelled, "cancelled while running");
  }
  if (out.size() > frame_payload_limit(FrameType::kResult, max_payload_)) {
    return send_error(pending.id, WorkerErrorCode::kPayloadTooLarge,
                      too_large("the chunk's results", out.size(), max_payload_));
  }
  if (!send(FrameType::kResult, pending.id, chunk_out_, kFrameChunk | kFrameErrorDetail)) {
    broken_ = true;
  }
  if (chunk_out_.capacity() > 4 * 1024 * 1024) std::string().swap(chunk_out_);
  return !broken_;
}

bool WorkerRuntime::send_error(std::uint64_t id, WorkerErrorCode code, std::string_view message) {
  if (!send(FrameType::kError, id, encode_error(code, message.substr(0, kMaxErrorMessage)))) {
    broken_ = true;
  }
  return !broken_;
}

bool WorkerRuntime::send_error(std::uint64_t id, const ErrorDetail& detail) {
  if (!send(FrameType::kError, id, encode_error_detail(detail), kFrameErrorDetail)) broken_ = true;
  return !broken_;
}

// Writes `payload` as one frame, or as fragments when it exceeds one record. Waits (bounded,
// repeatedly) for room while the supervisor drains the ring.
bool WorkerRuntime::send(FrameType type, std::uint64_t task_id, std::string_view payload,
                         std::uint16_t flags) {
  FrameHeader header;
  header.type = type;
  header.task_id = task_id;
  header.flags = flags;
  const std::span<const std::byte> bytes = as_bytes(payload);
  frames_out_.begin(header);
  for (;;) {
    const WriteStatus status = frames_out_.write(out_, bytes);
    if (status == WriteStatus::kOk) return true;
    if (status != WriteStatus::kFull) return false;
    flush();
    const std::uint32_t needed = frames_out_.next_record_size(out_, bytes);
    const WaitResult waited = wait_until(
        segment_.to_supervisor().writable, [&] { return out_.can_reserve(needed); }, WaitPolicy{},
        kChannelBound);
    // A supervisor that has not drained for this long is gone or stuck; PDEATHSIG ends us if
    // it died, otherwise keep waiting: it kills us itself if we are in the way.
    (void)waited;
  }
}

}  // namespace procpool::detail
