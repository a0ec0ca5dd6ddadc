#pragma once

// A program's env_file (docs/config.md): systemd's EnvironmentFile= format, one KEY=VALUE per
// line; blank lines and lines starting with '#' or ';' are skipped, a leading "export " is
// allowed, and a value wholly in matching single or double quotes loses them (no escapes, no
// expansion: what is between the quotes is the value).

#include <string>   // the path, messages
#include <utility>  // std::pair
#include <vector>   // the variables

namespace procpool::tool {

struct EnvFileRead {
  std::vector<std::pair<std::string, std::string>> variables;  // in the file's order
  std::string error;  // "cannot read it: ...", "line 3: not KEY=VALUE"; empty if read
};

EnvFileRead read_env_file(const std::string& path);

}  // namespace procpool::tool
