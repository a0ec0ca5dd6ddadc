#pragma once

// `procpool top`: the daemon's status as a live table in the terminal, refreshed every second
// (docs/control.md). q quits; so do SIGINT and SIGTERM, with the terminal put back as it was.

#include <span>  // arguments

#include "common/command.hpp"

namespace procpool::tool {

int run_top_command(std::span<char* const> args, const CommandContext& context);

}  // namespace procpool::tool
