#pragma once
#include "procpool/detail/require_cxx20.hpp"

// The worker SDK: what a worker executable links (procpool::worker). It pulls in only
// procpool::common and the standard library — no Asio, no Boost.
//
//   int main(int argc, char** argv) {
//     procpool::Worker worker(argc, argv);          // attaches to the supervisor's segment
//     worker.on("fib", [](procpool::Task& task) {
//       task.reply(std::to_string(fib(std::stoll(std::string(task.input())))));
//     });                                            // a thrown std::exception fails the task
//     return worker.run();                           // serves until told to stop
//   }
//
// Signals the SDK takes over: SIGTERM and SIGINT (finish the current task, then exit 0) and
// SIGHUP, which arrives when the supervisor dies (PR_SET_PDEATHSIG) and SIGKILLs the worker's
// process group: the worker and every child it started, unless a child left the group. Do not
// block or handle SIGHUP in a worker. A handler that throws std::bad_alloc fails its task with
// MemoryLimit and the worker is recycled.

#include <cstddef>      // std::byte
#include <cstdint>      // std::uint64_t
#include <functional>   // std::function
#include <memory>       // std::unique_ptr
#include <span>         // std::span
#include <stdexcept>    // std::runtime_error
#include <string>       // std::string
#include <string_view>  // std::string_view

namespace procpool {

class Worker;

// Thrown by a handler to fail its task with a code the submitter can branch on
// (TaskError::code()). Any exception fails the task; every one reports its type's name
// (TaskError::exception_type(), "std::invalid_argument" say), this one also its code.
class TaskFailure : public std::runtime_error {
 public:
  TaskFailure(const std::string& message, std::int64_t code)
      : std::runtime_error(message), code_(code) {}
  std::int64_t code() const noexcept { return code_; }

 private:
  std::int64_t code_;
};

namespace detail {
class WorkerRuntime;
}

// One task being run by a handler. Valid only during the handler call.
class Task {
 public:
  Task(const Task&) = delete;
  Task& operator=(const Task&) = delete;

  // The task's payload. A copy in the worker's own memory: safe to parse.
  std::string_view input() const noexcept { return input_; }

  // Sends the result. At most once per task; a handler that returns without replying answers
  // with an empty result. Throws procpool::Error on a second reply.
  void reply(std::string_view result);

  // Sends a partial result or progress report now, ahead of the final reply: the submitter's
  // TaskOptions::on_progress gets each one, in order, before the task's outcome. Does nothing
  // when the submitter listens for none (streams_progress() is false), which includes every
  // item of a chunk. Throws procpool::Error after reply(), or if `data` exceeds max_payload.
  // Blocks while the supervisor's ring is full: a slow progress callback slows the handler.
  void emit(std::string_view data);
  // True if the submitter listens for this task's progress: skip building reports otherwise.
  bool streams_progress() const noexcept { return progress_; }

  // True once the supervisor asked to cancel this task. Long handlers poll it and return early;
  // a handler that does not is killed with its worker after the pool's cancel grace period.
  bool cancelled() const noexcept;

  std::uint64_t id() const noexcept { return id_; }
  // 1 on the first dispatch, 2 on the first retry after a worker crash, ...
  std::uint32_t attempt() const noexcept { return attempt_; }

 private:
  friend class detail::WorkerRuntime;
  Task(detail::WorkerRuntime& runtime, std::uint64_t id, std::uint32_t attempt,
       std::string_view input, bool progress) noexcept
      : runtime_(runtime), id_(id), attempt_(attempt), input_(input), progress_(progress) {}

  detail::WorkerRuntime& runtime_;
  std::uint64_t id_;
  std::uint32_t attempt_;
  std::string_view input_;
  bool progress_;
  bool replied_ = false;
};

class Worker {
 public:
  using Handler = std::function<void(Task&)>;

  // Attaches to the segment the supervisor passed (PROCPOOL_SEGMENT_FD) and reads the pool's
  // worker data. Started outside a supervisor, prints one line saying so and exits with code 2.
  Worker(int argc, char** argv);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Registers a handler. Names are 1..256 bytes and unique; register all before run().
  // Throws procpool::Error otherwise.
  void on(std::string name, Handler handler);

  // The pool's worker data (Node's `workerData`), as given in PoolOptions::worker_data.
  std::string_view data() const noexcept;

  // The memory this worker shares with the supervisor and every other worker of the pool
  // (PoolOptions::shared_memory_size bytes; empty if the pool has none). The supervisor and
  // other workers may write it at any time: use atomics (std::atomic_ref) to coordinate, and
  // bounds-check offsets that tasks name in it.
  std::span<std::byte> shared_memory() const noexcept;

  // The pool's named region `name` (PoolOptions::regions), shared with the host and every other
  // worker, kept across restarts; the same rules as shared_memory(). procpool/shared_array.hpp
  // gives typed atomic access. Throws procpool::Error if the pool has none of that name.
  std::span<std::byte> region(std::string_view name) const;

  // Announces the handlers (READY), then serves tasks until the supervisor says stop or SIGTERM
  // arrives; either way the current task finishes first. Returns the exit code for main: 0 after
  // a requested stop, non-zero if the channel to the supervisor broke.
  int run();

 private:
  std::unique_ptr<detail::WorkerRuntime> runtime_;
};

}  // namespace procpool
