#include "common/usage.hpp"

#include <unistd.h>  // STDOUT_FILENO, STDERR_FILENO

#include <sstream>  // the option list
#include <string>   // the message
#include <vector>   // arguments

#include <boost/program_options/parsers.hpp>             // po::command_line_parser
#include <boost/program_options/positional_options.hpp>  // the other arguments

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

std::optional<boost::program_options::variables_map> parse_command_line(
    std::string_view program, std::span<char* const> args,
    const boost::program_options::options_description& options, const char* positional,
    int& status) {
  namespace po = boost::program_options;
  po::options_description all;
  all.add(options);
  po::positional_options_description rest;
  if (*positional != '\0') {
    all.add_options()(positional, po::value<std::vector<std::string>>());
    rest.add(positional, -1);
  }
  po::variables_map values;
  try {
    po::store(po::command_line_parser(std::vector<std::string>(args.begin(), args.end()))
                  .options(all)
                  .positional(rest)
                  .style(kOptionStyle)
                  .run(),
              values);
    po::notify(values);
  } catch (const po::error& e) {
    status = usage_error(program, e.what());
    return std::nullopt;
  }
  return values;
}

std::optional<std::string> one_positional(std::string_view program,
                                          const boost::program_options::variables_map& values,
                                          const char* positional, std::string_view what,
                                          bool required, int& status) {
  if (values.count(positional) == 0) {
    if (!required) return std::string();
    status = usage_error(program, std::string("missing ").append(what));
    return std::nullopt;
  }
  const auto& all = values[positional].as<std::vector<std::string>>();
  if (all.size() > 1) {
    status = usage_error(program, std::string("one ").append(what).append(" at a time"));
    return std::nullopt;
  }
  return all.front();
}

}  // namespace procpool::tool
