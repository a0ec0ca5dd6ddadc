#pragma once
#include "procpool/detail/require_cxx20.hpp"

// Streamed results: what a handler sends with Task::emit before its final reply, as the
// submitter's TaskOptions::on_progress receives it (docs/dataplane.md, "Streamed results").

#include <cstddef>      // std::size_t
#include <cstdint>      // std::uint32_t
#include <functional>   // std::function
#include <string_view>  // std::string_view

namespace procpool {

struct TaskProgress {
  // The bytes the handler emitted: valid only during the callback (copy what you keep).
  std::string_view data;
  // The dispatch attempt that emitted them: a task retried after its worker crashed streams
  // again from the start under attempt + 1; what the failed attempt sent is not taken back.
  std::uint32_t attempt = 0;
  int worker_pid = 0;
  // Which task: the payload's index in Pool::submit_batch (0 for Pool::submit).
  std::size_t index = 0;
};

// Called once per Task::emit, in the order the handler emitted, every one before the task's
// outcome (its completion callback, or its future becoming ready), never after it. Calls for
// one task never overlap; calls for different tasks may run at once on different threads.
using ProgressCallback = std::function<void(const TaskProgress&)>;

}  // namespace procpool
