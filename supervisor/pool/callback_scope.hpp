#pragma once

#include <cstddef>  // std::size_t
#include <cstdint>  // counts

namespace procpool::detail {

class PoolCore;

// The callbacks this thread runs now, innermost first: a callback may make this pool or
// another one deliver more.
struct CallbackScope {
  const PoolCore* core;
  CallbackScope* outer;
  std::uint64_t errors = 0;
};
extern thread_local CallbackScope* tls_callbacks;

// Writes to the host's stderr without ever raising SIGPIPE in it (its stderr may be a pipe
// whose reader is gone).
void write_stderr_quietly(const char* bytes, std::size_t size) noexcept;

// Called in a catch block: reports what a callback threw (once per occurrence) and counts it in
// the innermost scope, whose pool adds it to PoolMetrics::callback_errors.
void callback_threw(const char* callback, long long item, int pid) noexcept;
void item_callback_threw(std::size_t index, int pid) noexcept;

}  // namespace procpool::detail
