#pragma once

// The command line of `procpool supervise`: its options, their parsing into the ProgramSpec it
// runs, and its help text.

#include <optional>  // parse results
#include <span>      // std::span
#include <string>    // the help text

#include "procpool/program_spec.hpp"

namespace procpool::tool {

struct SuperviseOptions {
  ProgramSpec spec;    // name, command and args, and every option that maps onto it
  bool quiet = false;  // no life-cycle lines
};

// `args` are the arguments after "supervise". The options, or nothing with `status` set: the
// help was written to standard output, or a usage error to standard error.
std::optional<SuperviseOptions> parse_supervise_options(std::span<char* const> args, int& status);

// The text `procpool supervise --help` prints: generated from the options the parser uses.
std::string supervise_help();

}  // namespace procpool::tool
