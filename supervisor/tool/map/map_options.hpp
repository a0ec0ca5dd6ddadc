#pragma once

// The command line of `procpool map`: its options, their parsing, and its help text.

#include <chrono>    // std::chrono::milliseconds
#include <optional>  // parse results
#include <span>      // std::span
#include <string>    // the worker, the handler
#include <vector>    // the worker's arguments

namespace procpool::tool {

struct MapOptions {
  unsigned workers = 0;
  std::string handler = "main";
  unsigned retries = 0;
  std::chrono::milliseconds timeout{0};
  // SIGINT/SIGTERM: time for running tasks, then workers are killed
  std::chrono::milliseconds grace{30000};
  bool unordered = false;
  bool empty_on_failure = false;  // an empty line stands in for each failed line's result
  bool progress = false;
  bool stats = false;
  std::string worker;
  std::vector<std::string> worker_args;
};

// `args` are the arguments after "map". The options, or nothing with `status` set: the help
// was written to standard output, or a usage error to standard error.
std::optional<MapOptions> parse_map_options(std::span<char* const> args, int& status);

// The text `procpool map --help` prints: generated from the options the parser uses.
std::string map_help();

}  // namespace procpool::tool
