#pragma once

// The control protocol (docs/control.md): JSON lines over the daemon's AF_UNIX socket. A client
// sends one request object per line and gets one reply object per line:
//   {"cmd": "status"}                 {"ok": true, "programs": [...], "pools": [...]}
//   {"cmd": "status", "name": "web"}  the same, for one program or pool
//   {"cmd": "start", "name": "web"}   {"ok": true} once its instances are started (stop, restart
//                                     likewise: once stopped, once stopped and started again)
//   {"cmd": "reload"}                 {"ok": true, "added": [...], "changed": [...], ...} once the
//                                     config is re-read and applied (rolling, readiness-gated)
//   {"cmd": "shutdown"}               {"ok": true}, then the daemon stops everything and exits 0
// Anything else gets {"ok": false, "error": "..."} and the connection stays usable. Everything
// a client sends is untrusted: a line is at most kMaxRequestLine bytes, parsed once.

#include <cstddef>  // sizes
#include <optional>
#include <string>
#include <string_view>

namespace procpool::tool {

inline constexpr std::size_t kMaxRequestLine = 64 * 1024;

struct ControlRequest {
  enum class Command : std::uint8_t { Status, Start, Stop, Restart, Reload, Shutdown };
  Command command = Command::Status;
  std::string name;  // status: one program or pool ("" for all); start, stop, restart: a program
};

// The request in `line` (without its newline), or nothing with `error` set to say why.
std::optional<ControlRequest> parse_request(std::string_view line, std::string& error);

// {"ok": false, "error": MESSAGE} and a newline.
std::string error_reply(std::string_view message);

}  // namespace procpool::tool
