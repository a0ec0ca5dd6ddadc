#pragma once
#include "procpool/detail/require_cxx20.hpp"

namespace procpool {

// How a supervisor hands a worker its channel: environment variables naming inherited fds.
// The fds are inherited at the same numbers (the launcher clears close-on-exec on exactly these).

// The worker's segment (a sealed memfd; see Segment).
inline constexpr const char* kSegmentFdEnv = "PROCPOOL_SEGMENT_FD";
// An eventfd the worker writes 1 to after publishing, when the supervisor has announced that it
// sleeps (the supervisor waits in epoll, never on a futex: docs/design-rules.md §7). One per
// worker; a worker that rings it more than its ring traffic explains is killed as a flood
// (protocol.md).
inline constexpr const char* kDoorbellFdEnv = "PROCPOOL_DOORBELL_FD";
// The pool's shared memory (a sealed memfd; see SharedRegion), when PoolOptions::
// shared_memory_size is set. The same region in every worker.
inline constexpr const char* kSharedFdEnv = "PROCPOOL_SHARED_FD";

}  // namespace procpool
