#pragma once

// `procpool status [NAME] [--json]`: what the daemon runs, per instance and per pool
// (docs/control.md).

#include <span>  // arguments

#include "common/command.hpp"

namespace procpool::tool {

int run_status_command(std::span<char* const> args, const CommandContext& context);

}  // namespace procpool::tool
