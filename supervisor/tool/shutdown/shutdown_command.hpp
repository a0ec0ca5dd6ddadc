#pragma once

// `procpool shutdown`: asks the daemon to stop everything and exit, and waits until it has
// (docs/control.md).

#include <span>  // arguments

#include "common/command.hpp"

namespace procpool::tool {

int run_shutdown_command(std::span<char* const> args, const CommandContext& context);

}  // namespace procpool::tool
