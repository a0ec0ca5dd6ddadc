#include "common/control_client.hpp"

#include <poll.h>        // poll
#include <sys/socket.h>  // socket, connect
#include <sys/un.h>      // sockaddr_un
#include <unistd.h>      // read

#include <algorithm>  // std::max
#include <cerrno>     // errno
#include <cstring>    // std::memcpy

#include <boost/json.hpp>
#include <boost/program_options.hpp>

#include "common/error_stream.hpp"   // write_all
#include "common/text_format.hpp"    // errno_text
#include "run/control_endpoint.hpp"  // default_socket_path

namespace procpool::tool {
namespace {

int remaining_ms(std::chrono::steady_clock::time_point deadline) {
  const auto left =
      std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
  return static_cast<int>(std::max<std::int64_t>(0, left.count()));
}

}  // namespace

ControlClient::ControlClient(const std::string& socket_path,
                             std::chrono::steady_clock::time_point deadline)
    : deadline_(deadline), socket_path_(socket_path) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (socket_path.empty() || socket_path.size() >= sizeof address.sun_path) {
    error_ = "control socket path '" + socket_path + "' is empty or too long";
    return;
  }
  std::memcpy(address.sun_path, socket_path.c_str(), socket_path.size() + 1);
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) {
    error_ = "socket: " + errno_text(errno);
    return;
  }
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
    const int code = errno;
    error_ = code == ENOENT || code == ECONNREFUSED
                 ? "no procpool daemon is running on " + socket_path
                 : "cannot connect to " + socket_path + ": " + errno_text(code);
    return;
  }
  fd_ = std::move(fd);
}

std::optional<std::string> ControlClient::call(const std::string& request) {
  const std::string line = request + "\n";
  if (!write_all(fd_.get(), line.data(), line.size(), deadline_)) {
    error_ = "sending the request: " + errno_text(errno);
    return std::nullopt;
  }
  for (;;) {
    if (const std::size_t newline = buffer_.find('\n'); newline != std::string::npos) {
      std::string reply = buffer_.substr(0, newline);
      buffer_.erase(0, newline + 1);
      return reply;
    }
    pollfd pfd{fd_.get(), POLLIN, 0};
    const int ready = ::poll(&pfd, 1, remaining_ms(deadline_));
    if (ready == 0) {
      error_ = "no reply from the daemon on " + socket_path_ + " in time";
      return std::nullopt;
    }
    if (ready < 0 && errno == EINTR) continue;
    char chunk[65536];
    const ssize_t n = ::read(fd_.get(), chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      error_ = "the daemon closed the connection without a reply";
      return std::nullopt;
    }
    buffer_.append(chunk, static_cast<std::size_t>(n));
  }
}

std::optional<boost::json::object> ControlClient::request(const boost::json::object& request) {
  const std::optional<std::string> reply = call(boost::json::serialize(request));
  if (!reply) return std::nullopt;
  boost::system::error_code code;
  boost::json::value parsed = boost::json::parse(*reply, code);
  boost::json::object* object = code ? nullptr : parsed.if_object();
  const boost::json::value* ok = object != nullptr ? object->if_contains("ok") : nullptr;
  if (ok == nullptr || !ok->is_bool()) {
    error_ = "malformed reply from the daemon";
    return std::nullopt;
  }
  if (!ok->as_bool()) {
    const boost::json::value* error = object->if_contains("error");
    error_ = error != nullptr && error->is_string() ? std::string(error->as_string())
                                                    : "the daemon refused the request";
    return std::nullopt;
  }
  return std::move(*object);
}

bool ControlClient::wait_closed() {
  for (;;) {
    pollfd pfd{fd_.get(), POLLIN, 0};
    const int ready = ::poll(&pfd, 1, remaining_ms(deadline_));
    if (ready == 0) return false;
    if (ready < 0 && errno == EINTR) continue;
    char chunk[4096];
    const ssize_t n = ::read(fd_.get(), chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return true;
  }
}

void add_socket_option(boost::program_options::options_description& options) {
  options.add_options()("socket", boost::program_options::value<std::string>()->value_name("PATH"),
                        "the daemon's control socket (default: as procpool run's)");
}

std::string socket_of(const boost::program_options::variables_map& values) {
  return values.count("socket") != 0 ? values["socket"].as<std::string>() : default_socket_path();
}

}  // namespace procpool::tool
