// procpool-test-notify: what the supervisor tests' shell scripts run to speak the sd_notify
// protocol (there is no socat here). Its arguments are steps, done in order:
//   MESSAGE                 one datagram ("READY=1", "STATUS=warming up", ...) to $NOTIFY_SOCKET
//   --ping COUNT MS         WATCHDOG=1 COUNT times, MS apart
//   --listen PORT           listen on 127.0.0.1:PORT (kept open)
//   --pause                 wait for a signal (the supervisor's stop signal ends it)
// Exit status 0, or 2 with a message on stderr when a step fails.

#include <arpa/inet.h>   // htons
#include <netinet/in.h>  // sockaddr_in
#include <sys/socket.h>  // socket, sendto
#include <sys/un.h>      // sockaddr_un
#include <unistd.h>      // pause, usleep

#include <cerrno>   // errno
#include <cstdio>   // std::fprintf
#include <cstdlib>  // std::getenv, std::atoi
#include <cstring>  // std::strlen, std::strerror
#include <string>   // std::string

namespace {

int fail(const char* what) {
  std::fprintf(stderr, "procpool-test-notify: %s: %s\n", what, std::strerror(errno));
  return 2;
}

bool send_message(const std::string& message) {
  const char* path = std::getenv("NOTIFY_SOCKET");
  if (path == nullptr || std::strlen(path) >= sizeof(sockaddr_un::sun_path)) return false;
  const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path, std::strlen(path) + 1);
  const auto n = ::sendto(fd, message.data(), message.size(), 0,
                          reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
  ::close(fd);
  return n == static_cast<ssize_t>(message.size());
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--ping" && i + 2 < argc) {
      const int count = std::atoi(argv[i + 1]);
      const int ms = std::atoi(argv[i + 2]);
      i += 2;
      for (int k = 0; k < count; ++k) {
        if (!send_message("WATCHDOG=1")) return fail("send WATCHDOG=1");
        ::usleep(static_cast<useconds_t>(ms) * 1000);
      }
    } else if (arg == "--listen" && i + 1 < argc) {
      const int port = std::atoi(argv[++i]);
      const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
      const int one = 1;
      ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
      sockaddr_in addr{};
      addr.sin_family = AF_INET;
      addr.sin_port = htons(static_cast<unsigned short>(port));
      addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      if (fd < 0 || ::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 ||
          ::listen(fd, 16) != 0) {
        return fail("listen");
      }
    } else if (arg == "--pause") {
      ::pause();
    } else if (!send_message(arg)) {
      return fail("send");
    }
  }
  return 0;
}
