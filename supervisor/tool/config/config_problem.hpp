#pragma once

// What is wrong with a config file, and where (procpool check, procpool run).

#include <cstdint>  // positions
#include <string>   // messages
#include <string_view>
#include <vector>  // problems

namespace procpool::tool {

struct ConfigProblem {
  // 1-based, as editors count; 0 when the problem has no place in the file (it cannot be read).
  std::uint32_t line = 0;
  std::uint32_t column = 0;
  std::string message;
};

// "FILE:LINE:COL: MESSAGE" (the form compilers use, so editors can jump to it), or
// "FILE: MESSAGE" without a position.
std::string format_problem(std::string_view file, const ConfigProblem& problem);
// Each of `problems`, formatted, one per line.
std::string format_problems(std::string_view file, const std::vector<ConfigProblem>& problems);

}  // namespace procpool::tool
