#include "run/control_job.hpp"

#include <sys/eventfd.h>  // eventfd_write

#include "common/interrupt_signals.hpp"  // start_thread_without_signals
#include "run/control_protocol.hpp"      // error_reply

namespace procpool::tool {

ControlJob::~ControlJob() {
  if (thread_.joinable()) thread_.join();
}

bool ControlJob::busy() const {
  const std::lock_guard lock(mutex_);
  return running_ || done_;
}

void ControlJob::start(std::string what, std::uint64_t client, std::function<std::string()> work) {
  if (thread_.joinable()) thread_.join();  // the last one, finished and collected
  what_ = std::move(what);
  {
    const std::lock_guard lock(mutex_);
    running_ = true;
    done_ = false;
    client_ = client;
  }
  thread_ = start_thread_without_signals([this, work = std::move(work)] {
    std::string reply;
    try {
      reply = work();
    } catch (const std::exception& e) {
      reply = error_reply(std::string("internal error: ") + e.what());
    }
    {
      const std::lock_guard lock(mutex_);
      reply_ = std::move(reply);
      running_ = false;
      done_ = true;
    }
    (void)::eventfd_write(wake_fd_, 1);
  });
}

std::optional<std::pair<std::uint64_t, std::string>> ControlJob::collect() {
  std::pair<std::uint64_t, std::string> result;
  {
    const std::lock_guard lock(mutex_);
    if (!done_) return std::nullopt;
    done_ = false;
    result = {client_, std::move(reply_)};
  }
  thread_.join();
  return result;
}

}  // namespace procpool::tool
