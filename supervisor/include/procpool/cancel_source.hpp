#pragma once
#include "procpool/detail/require_cxx20.hpp"

#include <cstdint>  // std::uint64_t
#include <memory>   // std::weak_ptr
#include <mutex>    // std::mutex
#include <utility>  // std::pair
#include <vector>   // std::vector

namespace procpool {
namespace detail {
class PoolCore;
}

// Cancels the tasks submitted with it (TaskOptions::cancel), like Node's AbortController:
//     auto cancel = std::make_shared<procpool::CancelSource>();
//     options.cancel = cancel;  auto f = pool.submit("work", input, options);
//     cancel->cancel();         // f.get() throws TaskError{Cancelled}
// A queued task is removed; a running one is resolved as Cancelled at once, its handler sees
// Task::cancelled(), and its worker is killed if it is still running after the pool's
// cancel_grace. Cancelling after the task finished does nothing. Thread-safe.
class CancelSource {
 public:
  void cancel();
  bool cancelled() const;

 private:
  friend class detail::PoolCore;
  // Returns false (and registers nothing) if already cancelled.
  bool attach(std::weak_ptr<detail::PoolCore> pool, std::uint64_t task_id);

  mutable std::mutex mutex_;
  bool cancelled_ = false;
  std::vector<std::pair<std::weak_ptr<detail::PoolCore>, std::uint64_t>> tasks_;
};

}  // namespace procpool
