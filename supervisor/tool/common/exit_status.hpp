#pragma once

// Exit statuses of every procpool command, so that scripts can tell the cases apart the same way
// whichever command they run.

namespace procpool::tool {

inline constexpr int kExitOk = 0;      // every task succeeded
inline constexpr int kExitFailed = 1;  // some task failed, or input/output failed
inline constexpr int kExitUsage =
    2;  // bad command line, no standard output, or the pool could not start
// procpool run: a program with on_give_up = "exit" gave up (its service manager should act).
inline constexpr int kExitGaveUp = 3;
// Interrupted by a signal: 128 + its number (130 for SIGINT, 143 for SIGTERM), as the shell
// reports a command that a signal killed.
inline constexpr int kExitSignalBase = 128;

}  // namespace procpool::tool
