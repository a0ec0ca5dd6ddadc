#pragma once

// One long control command at a time (start, stop, restart, reload: each waits for processes
// to stop or become ready) on a thread of its own, so that the daemon's main loop goes on
// answering status requests and signals meanwhile (docs/control.md). The thread is started
// with SIGINT and SIGTERM blocked (start_thread_without_signals): only the main thread takes
// them.

#include <cstdint>     // client ids
#include <functional>  // the work
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>  // std::pair

namespace procpool::tool {

class ControlJob {
 public:
  // `wake_fd`: an eventfd written when a job finishes.
  explicit ControlJob(int wake_fd) : wake_fd_(wake_fd) {}
  ~ControlJob();  // waits for a job still running
  ControlJob(const ControlJob&) = delete;
  ControlJob& operator=(const ControlJob&) = delete;

  // A job runs, or its reply waits to be collected.
  bool busy() const;
  const std::string& what() const noexcept { return what_; }  // "reload", "stop web" ...
  // Runs `work` (which returns the reply line) for client `client` (0: none, a SIGHUP). Only
  // when not busy.
  void start(std::string what, std::uint64_t client, std::function<std::string()> work);
  // The finished job's client and reply, once; nothing while it runs.
  std::optional<std::pair<std::uint64_t, std::string>> collect();

 private:
  int wake_fd_;
  std::string what_;
  std::thread thread_;
  mutable std::mutex mutex_;
  bool running_ = false;  // guarded by mutex_, as the two below
  bool done_ = false;
  std::uint64_t client_ = 0;
  std::string reply_;
};

}  // namespace procpool::tool
