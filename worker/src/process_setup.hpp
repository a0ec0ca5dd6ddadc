#pragma once

#include <cstdint>  // std::uint64_t
#include <string>   // std::string

#include "procpool/unique_fd.hpp"

namespace procpool::detail {

// How a worker process is wired to its supervisor before it serves anything: the fds it
// inherited, the signals that stop it, and what happens when the supervisor dies.

// Prints "PROGRAM: procpool worker: MESSAGE" on stderr and exits with status 2.
[[noreturn]] void die(const char* program, const std::string& message);

// The fd the supervisor passed in environment variable `name`; dies if it is unset or not a
// number.
UniqueFd inherited_fd(const char* program, const char* name);

// SIGTERM and SIGINT set a flag (stop_signalled()) instead of killing the worker: it finishes its
// current task first. Installed without SA_RESTART, so a sleeping wait returns and sees it.
void install_stop_handlers();
bool stop_signalled() noexcept;

// The supervisor died: take the worker's process group with it (docs/design-rules.md §11).
void follow_supervisor();

// CLOCK_MONOTONIC in milliseconds, the unit of WorkerControl::heartbeat_ms.
std::uint64_t monotonic_ms();

}  // namespace procpool::detail
