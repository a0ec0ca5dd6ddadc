// procpool-test-listener PORT: listens on 127.0.0.1:PORT with SO_REUSEPORT, so that several
// instances of one program can each hold their own listening socket on the same port (the TCP
// readiness tests), then waits for a signal. Exit status 2 with a message if it cannot listen.

#include <arpa/inet.h>   // htons, htonl
#include <netinet/in.h>  // sockaddr_in
#include <sys/socket.h>  // socket, setsockopt, bind, listen
#include <unistd.h>      // pause

#include <cerrno>   // errno
#include <cstdio>   // std::fprintf
#include <cstdlib>  // std::atoi
#include <cstring>  // std::strerror

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: procpool-test-listener PORT\n");
    return 2;
  }
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  const int one = 1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<unsigned short>(std::atoi(argv[1])));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0 ||
      ::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(fd, 16) != 0) {
    std::fprintf(stderr, "procpool-test-listener: %s\n", std::strerror(errno));
    return 2;
  }
  ::pause();
  return 0;
}
