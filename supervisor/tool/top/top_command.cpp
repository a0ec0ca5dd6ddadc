#include "top/top_command.hpp"

#include <poll.h>     // the wait between frames
#include <signal.h>   // SIGPIPE
#include <termios.h>  // keys without Enter
#include <unistd.h>   // isatty, read

#include <chrono>  // the interval
#include <ctime>   // the clock in the header
#include <string>

#include <boost/json.hpp>
#include <boost/program_options.hpp>

#include "common/control_client.hpp"
#include "common/error_stream.hpp"  // write_all
#include "common/exit_status.hpp"
#include "common/interrupt_signals.hpp"
#include "common/option_values.hpp"  // Duration, Count
#include "common/usage.hpp"
#include "status/status_table.hpp"

namespace procpool::tool {
namespace {

namespace po = boost::program_options;
namespace json = boost::json;

constexpr std::string_view kProgram = "procpool top";
constexpr std::chrono::seconds kReplyBound{10};

void write_to(int fd, const std::string& text) { (void)write_all(fd, text.data(), text.size()); }

// On a terminal: the alternate screen (unless the frames are counted, -n: they stay on the
// screen then), no cursor, keys read one by one without echo; all put back as they were on the
// way out (q, SIGINT, SIGTERM, an error). Keys only when both ends are the terminal: piped into
// another program, a SIGPIPE must not leave the terminal without echo.
class Screen {
 public:
  explicit Screen(bool counted)
      : live_(::isatty(STDOUT_FILENO) == 1), alternate_(live_ && !counted) {
    if (live_ && ::isatty(STDIN_FILENO) == 1 && ::tcgetattr(STDIN_FILENO, &saved_) == 0) {
      termios raw = saved_;
      raw.c_lflag &= ~static_cast<tcflag_t>(ICANON | ECHO);
      raw.c_cc[VMIN] = 0;
      raw.c_cc[VTIME] = 0;
      keys_ = ::tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0;
    }
    if (alternate_) write_to(STDOUT_FILENO, "\x1b[?1049h");
    if (live_) write_to(STDOUT_FILENO, "\x1b[?25l");
  }
  ~Screen() {
    if (live_) write_to(STDOUT_FILENO, "\x1b[?25h");
    if (alternate_) write_to(STDOUT_FILENO, "\x1b[?1049l");
    if (keys_) ::tcsetattr(STDIN_FILENO, TCSANOW, &saved_);
  }
  Screen(const Screen&) = delete;
  Screen& operator=(const Screen&) = delete;

  // A whole frame: over the last one on a terminal, after it otherwise (like top -b). False
  // once the output is gone (a pipe's reader quit).
  bool show(const std::string& frame) const {
    const std::string text = live_ ? "\x1b[H\x1b[2J" + frame : frame + "\n";
    return write_all(STDOUT_FILENO, text.data(), text.size());
  }
  bool keys() const noexcept { return keys_; }

 private:
  bool live_;
  bool alternate_;
  bool keys_ = false;
  termios saved_{};
};

std::string clock_text() {
  const std::time_t now = std::time(nullptr);
  std::tm local{};
  ::localtime_r(&now, &local);
  char text[16];
  std::strftime(text, sizeof text, "%H:%M:%S", &local);
  return text;
}

// One frame: a header, then the status table; or why there is none.
std::string frame(const std::string& socket, const std::string& name, bool& answered) {
  ControlClient client(socket, std::chrono::steady_clock::now() + kReplyBound);
  json::object request;
  request["cmd"] = "status";
  if (!name.empty()) request["name"] = name;
  std::string header = "procpool top  " + socket + "  " + clock_text();
  const std::optional<json::object> reply = client.valid() ? client.request(request) : std::nullopt;
  answered = reply.has_value();
  if (!reply) return header + "\n\n" + client.error() + "\n";
  std::size_t instances = 0, ready = 0;
  try {
    for (const json::value& entry : reply->at("programs").as_array()) {
      ++instances;
      ready += entry.as_object().at("state").as_string() == "ready" ? 1 : 0;
    }
    header.append("  ")
        .append(std::to_string(ready))
        .append(" of ")
        .append(std::to_string(instances))
        .append(" instances ready  (q quits)\n\n");
    return header + status_table(*reply);
  } catch (const std::exception&) {
    answered = false;
    return header + "\n\nmalformed reply from the daemon\n";
  }
}

}  // namespace

int run_top_command(std::span<char* const> args, const CommandContext& /*context*/) {
  po::options_description options("Options", kHelpWidth, kHelpDescriptionColumn);
  add_socket_option(options);
  options.add_options()  //
      ("interval,d", po::value<Duration>()->value_name("DURATION"),
       "time between refreshes (default 1s)")  //
      ("iterations,n", po::value<Count<1, 1000000000>>()->value_name("N"),
       "stop after N frames (default: until q)")  //
      ("help,h", "show this help and exit");
  int status = kExitOk;
  const std::optional<po::variables_map> values =
      parse_command_line(kProgram, args, options, "name", status);
  if (!values) return status;
  if (values->count("help") != 0) {
    return print_help(
        "Usage: procpool top [OPTIONS] [NAME]\n"
        "\n"
        "The daemon's status (procpool status) as a live table, refreshed every second: per\n"
        "program instance its state, pid, uptime, restarts, memory, CPU and last exit; per\n"
        "pool its workers and tasks. NAME: one program or pool. q quits. Not on a terminal,\n"
        "it prints one frame after the other.\n"
        "\n" +
        options_text(options) +
        "\n"
        "Exit status: 0 quit; 1 no daemon on the socket at the first frame; 2 usage error.\n");
  }
  const std::optional<std::string> name =
      one_positional(kProgram, *values, "name", "NAME", false, status);
  if (!name) return status;
  const std::chrono::milliseconds interval = values->count("interval") != 0
                                                 ? (*values)["interval"].as<Duration>().value
                                                 : std::chrono::milliseconds(1000);
  const unsigned long iterations = values->count("iterations") != 0
                                       ? (*values)["iterations"].as<Count<1, 1000000000>>().value
                                       : 0;
  const std::string socket = socket_of(*values);

  bool answered = false;
  const std::string first = frame(socket, *name, answered);
  if (!answered) {
    write_to(STDERR_FILENO, std::string(kProgram) + ": " + first.substr(first.find("\n\n") + 2));
    return kExitFailed;
  }
  ::signal(SIGPIPE, SIG_IGN);  // a reader gone is a failed write, and the terminal put back
  const InterruptSignals signals;
  const Screen screen(iterations != 0);
  std::string shown = first;
  for (unsigned long n = 1;; ++n) {
    if (!screen.show(shown)) break;
    if (iterations != 0 && n >= iterations) break;
    // Until the next frame is due: a key, a signal, or the interval.
    const auto due = std::chrono::steady_clock::now() + interval;
    bool quit = false;
    while (!quit && signals.count() == 0) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          due - std::chrono::steady_clock::now());
      if (left.count() <= 0) break;
      pollfd fds[2] = {{signals.fd(), POLLIN, 0}, {STDIN_FILENO, POLLIN, 0}};
      if (::poll(fds, screen.keys() ? 2 : 1, static_cast<int>(left.count())) <= 0) continue;
      char key = 0;
      if (screen.keys() && (fds[1].revents & POLLIN) != 0 && ::read(STDIN_FILENO, &key, 1) == 1) {
        quit = key == 'q' || key == 'Q';
      } else if (screen.keys() && (fds[1].revents & (POLLHUP | POLLERR | POLLNVAL)) != 0) {
        quit = true;  // the terminal is gone
      }
    }
    if (quit || signals.count() != 0) break;
    shown = frame(socket, *name, answered);
  }
  return kExitOk;
}

}  // namespace procpool::tool
