// procpool: the command-line front end of the pool.
//
//   procpool map [OPTIONS] -- WORKER [ARGS...]   (see map_command.hpp)
//   procpool --help | --version

#include <fcntl.h>   // open, fcntl
#include <unistd.h>  // write

#include <cerrno>       // errno
#include <cstring>      // std::strcmp
#include <span>         // std::span
#include <string>       // messages
#include <string_view>  // std::string_view

#include "map/map_command.hpp"

namespace {

constexpr std::string_view kHelp =
    R"(Usage: procpool COMMAND [OPTIONS]
       procpool --help | --version

Runs tasks in a pool of worker processes (procpool workers: see worker/include/procpool/worker.hpp).

Commands:
  map    run a worker handler on every line of standard input, results to standard output

Options:
  -h, --help     show this help and exit
  --version      show the version and exit

Run 'procpool COMMAND --help' for a command's options.
)";

void write_out(int fd, std::string_view text) {
  while (!text.empty()) {
    const ssize_t n = ::write(fd, text.data(), text.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    text.remove_prefix(static_cast<std::size_t>(n));
  }
}

int usage_error(const std::string& message) {
  write_out(STDERR_FILENO,
            "procpool: " + message + "\nTry 'procpool --help' for more information.\n");
  return procpool::tool::kExitUsage;
}

// A closed fd 0, 1 or 2 would be taken by the next open() (a pool's eventfd read as input, say):
// point any closed one at /dev/null first. Returns which were closed (bit N for fd N).
unsigned ensure_standard_fds() {
  unsigned closed = 0;
  for (int fd = 0; fd < 3; ++fd) {
    if (::fcntl(fd, F_GETFD) >= 0 || errno != EBADF) continue;
    closed |= 1U << fd;
    const int null_fd = ::open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY);
    if (null_fd >= 0 && null_fd != fd) {
      ::dup2(null_fd, fd);
      ::close(null_fd);
    }
  }
  return closed;
}

}  // namespace

int main(int argc, char** argv) {
  const unsigned closed_fds = ensure_standard_fds();
  const std::span<char* const> args(argv + 1, argc > 0 ? static_cast<std::size_t>(argc - 1) : 0);
  if (args.empty()) return usage_error("missing command");
  const std::string_view command = args[0];
  if (command == "--help" || command == "-h") {
    write_out(STDOUT_FILENO, kHelp);
    return procpool::tool::kExitOk;
  }
  if (command == "--version") {
    write_out(STDOUT_FILENO, "procpool " PROCPOOL_VERSION "\n");
    return procpool::tool::kExitOk;
  }
  if (command == "map") {
    return procpool::tool::run_map_command(args.subspan(1), (closed_fds & (1U << 1)) != 0);
  }
  if (command.starts_with("-"))
    return usage_error("unrecognised option '" + std::string(command) + "'");
  return usage_error("unknown command '" + std::string(command) + "'");
}
