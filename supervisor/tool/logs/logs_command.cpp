#include "logs/logs_command.hpp"

#include <fcntl.h>     // open
#include <poll.h>      // poll (the follow interval, and SIGINT)
#include <sys/stat.h>  // fstat, stat: rotation
#include <unistd.h>    // read, STDOUT_FILENO

#include <cerrno>  // errno
#include <chrono>  // the deadline
#include <deque>   // the last lines
#include <string>

#include <boost/json.hpp>
#include <boost/program_options.hpp>

#include "common/control_client.hpp"
#include "common/error_stream.hpp"  // write_all
#include "common/exit_status.hpp"
#include "common/interrupt_signals.hpp"
#include "common/option_values.hpp"  // Count
#include "common/text_format.hpp"    // errno_text
#include "common/usage.hpp"
#include "procpool/unique_fd.hpp"

namespace procpool::tool {
namespace {

namespace po = boost::program_options;

constexpr std::string_view kProgram = "procpool logs";
// How often -f looks for more: a file, not a pipe, so there is nothing to sleep on.
constexpr int kFollowPollMs = 50;
using Lines = Count<0, 1'000'000>;

void write_error(const std::string& message) {
  const std::string line = std::string(kProgram) + ": " + message + "\n";
  (void)write_all(STDERR_FILENO, line.data(), line.size());
}

// The program's log file, from the daemon's status reply; empty (with `error`) if none.
std::string log_path(const std::string& socket_path, const std::string& name, std::string& error) {
  ControlClient client(socket_path, std::chrono::steady_clock::now() + std::chrono::seconds(10));
  boost::json::object request;
  request["cmd"] = "status";
  request["name"] = name;
  const std::optional<boost::json::object> reply =
      client.valid() ? client.request(request) : std::nullopt;
  if (!reply) {
    error = client.error();
    return {};
  }
  const boost::json::value* programs = reply->if_contains("programs");
  if (programs == nullptr || !programs->is_array() || programs->as_array().empty()) {
    error = "'" + name + "' is not a program (pools have no log file)";
    return {};
  }
  const boost::json::value& entry = programs->as_array().front();
  const boost::json::value* log =
      entry.is_object() ? entry.as_object().if_contains("log") : nullptr;
  if (log == nullptr || !log->is_string()) {
    error = "program '" + name + "' has no log file (set log = \"FILE\" in its [[program]])";
    return {};
  }
  return std::string(log->as_string());
}

// Reads every line of `fd` into `last`, keeping the last `count`; false on a read error. A
// line the file does not end is left in `partial` (a rotation may split a line across two
// files: the next file's first bytes complete it).
bool read_lines(int fd, std::size_t count, std::deque<std::string>& last, std::string& partial) {
  char chunk[65536];
  for (;;) {
    const ssize_t n = ::read(fd, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    if (n == 0) break;
    for (ssize_t i = 0; i < n; ++i) {
      partial.push_back(chunk[i]);
      if (chunk[i] != '\n') continue;
      last.push_back(std::move(partial));
      partial.clear();
      if (last.size() > count) last.pop_front();
    }
  }
  return true;
}

// The last `count` lines of the log, written to stdout: from the open file, and from the file
// rotated before it (path.1) when the open one has fewer. Leaves the offset at the end.
bool print_last_lines(const std::string& path, int fd, std::size_t count) {
  std::deque<std::string> last;
  std::string partial;
  if (const UniqueFd older(::open((path + ".1").c_str(), O_RDONLY | O_CLOEXEC)); older) {
    (void)read_lines(older.get(), count, last, partial);
  }
  if (!read_lines(fd, count, last, partial)) return false;
  if (!partial.empty()) {  // a line still being written: the follow goes on from its end
    last.push_back(std::move(partial));
    if (last.size() > count) last.pop_front();
  }
  std::string out;
  for (const std::string& line : last) out += line;
  return write_all(STDOUT_FILENO, out.data(), out.size());
}

// Copies what `fd` holds from its offset to its end to stdout; false if stdout failed.
bool copy_rest(int fd) {
  char chunk[65536];
  for (ssize_t n; (n = ::read(fd, chunk, sizeof chunk)) > 0;) {
    if (!write_all(STDOUT_FILENO, chunk, static_cast<std::size_t>(n))) return false;
  }
  return true;
}

// Copies what is appended to `path` until SIGINT or SIGTERM; reopens it when it is rotated
// (another file at the path) or truncated.
int follow(const std::string& path, UniqueFd fd) {
  const InterruptSignals signals;
  while (signals.count() == 0) {
    if (!copy_rest(fd.get())) return kExitFailed;
    pollfd pfd{signals.fd(), POLLIN, 0};
    (void)::poll(&pfd, 1, kFollowPollMs);
    struct stat open_file {
    }, at_path{};
    if (::fstat(fd.get(), &open_file) != 0) return kExitFailed;
    const bool there = ::stat(path.c_str(), &at_path) == 0;
    const off_t offset = ::lseek(fd.get(), 0, SEEK_CUR);
    if (!there || (at_path.st_ino == open_file.st_ino && at_path.st_size >= offset)) continue;
    // Rotated: what is left of the old file first; then, if it was rotated twice since we
    // looked (path.1 is not the file we had open), all of path.1; then the new one from its
    // start. (More rotations than that within one poll lose the files in between.)
    if (!copy_rest(fd.get())) return kExitFailed;
    struct stat previous {};
    if (at_path.st_ino != open_file.st_ino && ::stat((path + ".1").c_str(), &previous) == 0 &&
        previous.st_ino != open_file.st_ino) {
      if (const UniqueFd between(::open((path + ".1").c_str(), O_RDONLY | O_CLOEXEC)); between) {
        if (!copy_rest(between.get())) return kExitFailed;
      }
    }
    if (UniqueFd next(::open(path.c_str(), O_RDONLY | O_CLOEXEC)); next) fd = std::move(next);
  }
  return kExitOk;
}

}  // namespace

int run_logs_command(std::span<char* const> args, const CommandContext& /*context*/) {
  po::options_description options("Options", kHelpWidth, kHelpDescriptionColumn);
  add_socket_option(options);
  options.add_options()                                                             //
      ("follow,f", po::bool_switch(), "then print what is appended, until Ctrl-C")  //
      ("lines,n", po::value<Lines>()->value_name("N"),
       "how many of the last lines (default 100)")  //
      ("help,h", "show this help and exit");
  int status = kExitOk;
  const std::optional<po::variables_map> parsed =
      parse_command_line(kProgram, args, options, "name", status);
  if (!parsed) return status;
  const po::variables_map& values = *parsed;
  if (values.count("help") != 0) {
    return print_help(
        "Usage: procpool logs [OPTIONS] NAME\n\n"
        "Prints the last lines of program NAME's log file (its log = \"FILE\" in the config, and\n"
        "the file rotated before it if need be),\n"
        "asking the daemon where it is; with -f, then what is appended, across rotations.\n\n" +
        options_text(options) +
        "\nExit status: 0 printed (or followed until Ctrl-C); 1 no daemon, no such program, no "
        "log\nfile, or it cannot be read; 2 usage error.\n");
  }
  const std::optional<std::string> name =
      one_positional(kProgram, values, "name", "NAME", true, status);
  if (!name) return status;
  std::string error;
  const std::string path = log_path(socket_of(values), *name, error);
  if (path.empty()) {
    write_error(error);
    return kExitFailed;
  }
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    write_error(path + ": " + errno_text(errno));
    return kExitFailed;
  }
  const std::size_t count = values.count("lines") != 0 ? values["lines"].as<Lines>().value : 100;
  if (!print_last_lines(path, fd.get(), count)) {
    write_error(path + ": " + errno_text(errno));
    return kExitFailed;
  }
  return values["follow"].as<bool>() ? follow(path, std::move(fd)) : kExitOk;
}

}  // namespace procpool::tool
