#pragma once

// `procpool reload`: the daemon re-reads its config and applies what changed, as SIGHUP does
// (docs/control.md, "reload"). Returns once it is applied; prints what changed.

#include <span>  // arguments

#include "common/command.hpp"

namespace procpool::tool {

int run_reload_command(std::span<char* const> args, const CommandContext& context);

}  // namespace procpool::tool
