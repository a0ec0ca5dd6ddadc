#include "config/config_problem.hpp"

namespace procpool::tool {

std::string format_problem(std::string_view file, const ConfigProblem& problem) {
  std::string text(file);
  if (problem.line != 0) {
    text += ":" + std::to_string(problem.line) + ":" + std::to_string(problem.column);
  }
  text += ": ";
  text += problem.message;
  return text;
}

}  // namespace procpool::tool
