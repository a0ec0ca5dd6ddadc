#include <sys/epoll.h>  // epoll_ctl

#include "pool_core.hpp"

namespace procpool::detail {

// The supervisor thread reads a worker's pipes after epoll_wait and before it takes mu_ again,
// so no sink (an fd, a rotating file, a user's line callback) ever runs under the pool's lock.
// Only this thread creates, reads and destroys the captures, so it needs no lock for them;
// other threads never touch WorkerSlot::out or err. Each read is bounded
// (OutputCapture::kBudgetPerWake) and the pipes are level-triggered, so a worker flooding its
// output gets its turn with the others rather than the whole thread.
void PoolCore::read_outputs(WorkerSlot& slot) {
  for (OutputCapture* capture : {slot.process.out.get(), slot.process.err.get()}) {
    if (capture == nullptr || capture->done()) continue;
    if (capture->read_some()) continue;
    // EOF (every writer closed it) or a read error: unwatched before it is closed.
    ::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_DEL, capture->read_fd(), nullptr);
    capture->finish();
  }
}

void PoolCore::retire_outputs_locked(WorkerSlot& slot) {
  for (std::unique_ptr<OutputCapture>* capture : {&slot.process.out, &slot.process.err}) {
    if (!*capture) continue;
    // Its fd is tagged with the slot's index: left in the set, it would be read as the next
    // worker's of this slot.
    if (!(*capture)->done()) {
      ::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_DEL, (*capture)->read_fd(), nullptr);
    }
    closing_outputs_.push_back(std::move(*capture));
  }
}

// The rest of a reaped worker's output: its process group was SIGKILLed at the reap, so what
// the pipes hold is all there will be (a writer that left the group is cut off by
// OutputCapture::finish's bound).
void PoolCore::close_outputs() {
  for (auto& capture : closing_outputs_) capture->finish();
  closing_outputs_.clear();
}

}  // namespace procpool::detail
