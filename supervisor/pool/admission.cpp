#include "pool_core.hpp"

#include <string>  // messages

namespace procpool::detail {
bool PoolCore::admit_locked(std::unique_lock<std::mutex>& lock, std::string_view handler,
                            std::string_view payload, const TaskOptions& options,
                            Completion& completion, std::uint32_t& handler_id) {
  auto reject = [&](TaskError::Kind kind, std::string message) {
    ++failed_;  // refused at submission: the caller sees a failed task, and so do the metrics
    deliveries_.push_back(Delivery{std::move(completion), {}, TaskError(kind, message)});
    return false;
  };
  if (failure_) return reject(TaskError::Kind::PoolFailed, "pool failed: " + *failure_);
  if (!accepting_) return reject(TaskError::Kind::ShuttingDown, "pool is shutting down");
  const std::optional<std::uint32_t> id = handlers_.find(handler);
  if (!id) {
    return reject(TaskError::Kind::UnknownHandler,
                  "no worker handler named \"" + std::string(handler.substr(0, 256)) + "\"");
  }
  handler_id = *id;
  if (payload.size() > options_.max_payload) {
    return reject(TaskError::Kind::PayloadTooLarge, "payload of " + std::to_string(payload.size()) +
                                                        " bytes exceeds max_payload " +
                                                        std::to_string(options_.max_payload));
  }
  if (options_.max_queue != 0 && queue_.size() >= options_.max_queue) {
    if (!options.wait_if_full) {
      return reject(TaskError::Kind::QueueFull,
                    "queue full (max_queue " + std::to_string(options_.max_queue) + ")");
    }
    // What this thread queued may not have been dispatched yet (a batch dispatches every few
    // tasks): out with it first, or the room waited for would come only with a timer.
    dispatch_locked();
    publish_all_locked();
    changed_.wait(lock, [&] { return !accepting_ || queue_.size() < options_.max_queue; });
    if (!accepting_) return reject(TaskError::Kind::ShuttingDown, "pool is shutting down");
  }
  return true;
}

}  // namespace procpool::detail
