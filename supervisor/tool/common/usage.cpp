#include "common/usage.hpp"

#include <unistd.h>  // STDOUT_FILENO, STDERR_FILENO

#include <sstream>  // the option list
#include <string>   // the message

#include "common/error_stream.hpp"  // write_all
#include "common/exit_status.hpp"

namespace procpool::tool {

std::string options_text(const boost::program_options::options_description& options) {
  std::ostringstream laid_out;
  laid_out << options;
  const std::string text = std::move(laid_out).str();
  std::string trimmed;
  trimmed.reserve(text.size());
  std::size_t line_start = 0;
  while (line_start < text.size()) {
    std::size_t end = text.find('\n', line_start);
    if (end == std::string::npos) end = text.size();
    std::size_t content_end = text.find_last_not_of(' ', end == line_start ? end : end - 1);
    content_end =
        content_end == std::string::npos || content_end < line_start ? line_start : content_end + 1;
    trimmed.append(text, line_start, content_end - line_start);
    if (end < text.size()) trimmed += '\n';
    line_start = end + 1;
  }
  return trimmed;
}

int usage_error(std::string_view program, std::string_view message) {
  std::string text(program);
  text.append(": ").append(message).append("\nTry '").append(program);
  text.append(" --help' for more information.\n");
  (void)write_all(STDERR_FILENO, text.data(), text.size());
  return kExitUsage;
}

int print_help(std::string_view text) {
  (void)write_all(STDOUT_FILENO, text.data(), text.size());
  return kExitOk;
}

}  // namespace procpool::tool
