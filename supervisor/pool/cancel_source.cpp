#include "procpool/cancel_source.hpp"

#include "pool_core.hpp"

namespace procpool {

void CancelSource::cancel() {
  std::vector<std::pair<std::weak_ptr<detail::PoolCore>, std::uint64_t>> tasks;
  {
    std::lock_guard lock(mutex_);
    if (cancelled_) return;
    cancelled_ = true;
    tasks.swap(tasks_);
  }
  // Outside our mutex: the pool takes its own (the pool calls attach() holding its mutex, so
  // holding ours here would invert the order).
  for (auto& [pool, id] : tasks) {
    if (auto core = pool.lock()) core->cancel(id);
  }
}

bool CancelSource::cancelled() const {
  std::lock_guard lock(mutex_);
  return cancelled_;
}

bool CancelSource::attach(std::weak_ptr<detail::PoolCore> pool, std::uint64_t task_id) {
  std::lock_guard lock(mutex_);
  if (cancelled_) return false;
  tasks_.emplace_back(std::move(pool), task_id);
  return true;
}

}  // namespace procpool
