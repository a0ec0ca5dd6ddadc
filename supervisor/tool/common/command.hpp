#pragma once

// One procpool subcommand, as main() lists it: its name, the one-line summary the top-level help
// shows, and the function that runs it. Adding a command is one entry in main.cpp's table plus
// its folder next to map/.

#include <span>         // std::span
#include <string_view>  // names, summaries

namespace procpool::tool {

// What main() knows before any command runs.
struct CommandContext {
  // File descriptor 1 was closed when the process started (main() then points it at /dev/null,
  // so that no later open() takes it).
  bool stdout_was_closed = false;
};

// `args` are the arguments after the command's name. Returns the exit status
// (common/exit_status.hpp).
using CommandRun = int (*)(std::span<char* const> args, const CommandContext& context);

struct Command {
  std::string_view name;
  std::string_view summary;
  CommandRun run;
};

}  // namespace procpool::tool
