#include "config/config_problem.hpp"

namespace procpool::tool {

std::string format_problem(std::string_view file, const ConfigProblem& problem) {
  // Appended piece by piece: GCC 12's -Wrestrict misfires on "literal" + std::string&& at -O3.
  std::string text(file);
  if (problem.line != 0) {
    text.append(":").append(std::to_string(problem.line));
    text.append(":").append(std::to_string(problem.column));
  }
  text.append(": ").append(problem.message);
  return text;
}

std::string format_problems(std::string_view file, const std::vector<ConfigProblem>& problems) {
  std::string text;
  for (const ConfigProblem& problem : problems)
    text.append(format_problem(file, problem)).push_back('\n');
  return text;
}

}  // namespace procpool::tool
