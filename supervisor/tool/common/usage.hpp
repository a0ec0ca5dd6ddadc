#pragma once

// How every procpool command reads its command line and answers a bad one: the same
// Boost.Program_options style, the same help width, and usage errors in one form,
//   PROGRAM: MESSAGE
//   Try 'PROGRAM --help' for more information.
// with exit status 2 (kExitUsage).

#include <string>       // the option list
#include <string_view>  // texts

#include <optional>  // parse results
#include <span>      // arguments

#include <boost/program_options/cmdline.hpp>              // po::command_line_style
#include <boost/program_options/options_description.hpp>  // the option list
#include <boost/program_options/variables_map.hpp>        // parse results

namespace procpool::tool {

// Unix style without abbreviations: `--work 2` must not silently mean --workers, and a command
// that gains an option must not change what an existing abbreviation meant.
inline constexpr int kOptionStyle = boost::program_options::command_line_style::unix_style &
                                    ~boost::program_options::command_line_style::allow_guessing;

// Columns of generated help (po::options_description's line length), and where descriptions
// may start at the latest.
inline constexpr unsigned kHelpWidth = 96;
inline constexpr unsigned kHelpDescriptionColumn = 24;

// The option list of a help text, as Boost.Program_options lays it out, without the spaces it
// leaves at the end of wrapped lines.
std::string options_text(const boost::program_options::options_description& options);

// `program` is "procpool" or "procpool COMMAND". Writes the message to standard error (straight
// to file descriptor 2: no command has set anything up yet); returns kExitUsage.
int usage_error(std::string_view program, std::string_view message);

// Writes `text` to standard output; returns kExitOk.
int print_help(std::string_view text);

// Parses `args` against `options` (kOptionStyle), the other arguments collected as a vector of
// strings under `positional` (none allowed if empty). On a bad command line: nothing, with
// `status` set by usage_error.
std::optional<boost::program_options::variables_map> parse_command_line(
    std::string_view program, std::span<char* const> args,
    const boost::program_options::options_description& options, const char* positional,
    int& status);

// The one argument collected under `positional` ("" if none and not `required`); nothing, with
// `status` set by usage_error, if there are more, or none while `required`. `what` names it in
// the message ("missing NAME", "one NAME at a time").
std::optional<std::string> one_positional(std::string_view program,
                                          const boost::program_options::variables_map& values,
                                          const char* positional, std::string_view what,
                                          bool required, int& status);

}  // namespace procpool::tool
