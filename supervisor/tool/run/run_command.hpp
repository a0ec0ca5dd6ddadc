#pragma once

// `procpool run CONFIG.toml`: the daemon (docs/config.md, docs/control.md). Runs the config's
// programs and pools in the foreground until SIGTERM, SIGINT or a shutdown request, answering
// control requests on its socket meanwhile.

#include <span>  // arguments

#include "common/command.hpp"

namespace procpool::tool {

int run_run_command(std::span<char* const> args, const CommandContext& context);

}  // namespace procpool::tool
