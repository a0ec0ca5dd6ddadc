#pragma once

// `procpool check CONFIG.toml`: reads the daemon's config file and reports every problem with
// its position, starting nothing (docs/config.md).

#include <span>  // arguments

#include "common/command.hpp"

namespace procpool::tool {

int run_check_command(std::span<char* const> args, const CommandContext& context);

}  // namespace procpool::tool
