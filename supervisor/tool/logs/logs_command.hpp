#pragma once

// `procpool logs NAME [-f]`: the last lines of a daemon program's log file, then (with -f) what
// is appended to it, across rotations (docs/control.md).

#include <span>  // arguments

#include "common/command.hpp"

namespace procpool::tool {

int run_logs_command(std::span<char* const> args, const CommandContext& context);

}  // namespace procpool::tool
