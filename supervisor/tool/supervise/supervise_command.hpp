#pragma once

// `procpool supervise`: one program kept running from the command line, through
// procpool::Supervisor (docs/supervise.md).
//
//   procpool supervise --name web --numprocs 2 -- ./web-server --port 8080
//
// Life-cycle events go to standard error (event_reporter.hpp); SIGTERM and SIGINT stop the
// program and its process groups, and the exit status follows the program's. See
// supervise_help() (supervise_options.hpp) for the options and the exit statuses.

#include <span>  // std::span

#include "common/command.hpp"      // CommandContext
#include "common/exit_status.hpp"  // every command's statuses

namespace procpool::tool {

// `args` are the arguments after "supervise" (argv[2..]). Returns the exit status.
int run_supervise_command(std::span<char* const> args, const CommandContext& context);

}  // namespace procpool::tool
