#pragma once

// `procpool start|stop|restart NAME`: one program of the daemon's, by hand (docs/control.md).
// Each returns once the daemon has done it: stop once the instances have exited, restart once
// they are started again.

#include <span>  // arguments

#include "common/command.hpp"

namespace procpool::tool {

int run_start_command(std::span<char* const> args, const CommandContext& context);
int run_stop_command(std::span<char* const> args, const CommandContext& context);
int run_restart_command(std::span<char* const> args, const CommandContext& context);

}  // namespace procpool::tool
