#pragma once

// `procpool map`: runs one handler of a worker program on every line of standard input in a
// pool of worker processes, and writes the results to standard output.
//
//   seq 1 1000000 | procpool map --workers 2 -- procpool-worker-increment
//
// Streams in bounded memory: at most kWindow lines are in flight (submitted and not yet written),
// and input is read only as results are written. SIGINT and SIGTERM stop it gracefully (a
// second one at once) and it reports which lines were not completed. See map_help()
// (map_options.hpp) for the options, the messages and the exit statuses, and docs/map.md.

#include <span>  // std::span

#include "common/command.hpp"      // CommandContext
#include "common/exit_status.hpp"  // every command's statuses

namespace procpool::tool {

// `args` are the arguments after "map" (argv[2..]). Returns the exit status.
int run_map_command(std::span<char* const> args, const CommandContext& context);

}  // namespace procpool::tool
