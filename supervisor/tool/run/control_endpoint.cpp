#include "run/control_endpoint.hpp"

#include <fcntl.h>     // open
#include <sys/file.h>  // flock
#include <sys/socket.h>
#include <sys/stat.h>  // mkdir, lstat, chmod, umask
#include <sys/un.h>    // sockaddr_un
#include <unistd.h>    // getuid, getpid, unlink, ftruncate

#include <cerrno>   // errno
#include <cstdlib>  // std::getenv
#include <cstring>  // std::strerror

namespace procpool::tool {
namespace {

using Kind = ControlEndpointError::Kind;

[[noreturn]] void fail(const std::string& what, int code) {
  throw ControlEndpointError(Kind::SystemCall, what + ": " + std::strerror(code), code);
}

std::string parent_of(const std::string& path) {
  const std::size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

// The socket's directory: made private if we create it; if it exists, it must be a directory
// (not a symlink) of ours that nobody else may write to, or another user could swap the socket.
void ensure_private_directory(const std::string& dir, std::optional<unsigned> group) {
  if (::mkdir(dir.c_str(), 0700) == 0) {
    // Ours: the group may pass through it to the socket (and see nothing else).
    if (group && (::chown(dir.c_str(), static_cast<uid_t>(-1), static_cast<gid_t>(*group)) != 0 ||
                  ::chmod(dir.c_str(), 0710) != 0)) {
      fail("chown/chmod " + dir, errno);
    }
  } else if (errno != EEXIST) {
    fail("mkdir " + dir, errno);
  }
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0) fail("lstat " + dir, errno);
  if (!S_ISDIR(st.st_mode)) {
    throw ControlEndpointError(Kind::BadPath, dir + " is not a directory");
  }
  if (st.st_uid != ::getuid() && st.st_uid != 0) {
    throw ControlEndpointError(Kind::BadPath, dir + " belongs to another user");
  }
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0 && (st.st_mode & S_ISVTX) == 0) {
    throw ControlEndpointError(Kind::BadPath, dir + " is writable by others");
  }
  if (group && (st.st_mode & S_IXOTH) == 0 &&
      ((st.st_mode & S_IXGRP) == 0 || st.st_gid != static_cast<gid_t>(*group))) {
    throw ControlEndpointError(Kind::BadPath, dir + " does not let group " +
                                                  std::to_string(*group) +
                                                  " reach the socket: chgrp it and chmod g+x");
  }
}

int read_holder(int fd) {
  char text[32] = {};
  const ssize_t n = ::pread(fd, text, sizeof text - 1, 0);
  return n > 0 ? std::atoi(text) : 0;
}

}  // namespace

std::string default_socket_path() {
  if (const char* runtime = std::getenv("XDG_RUNTIME_DIR"); runtime != nullptr && *runtime == '/') {
    return std::string(runtime) + "/procpool/procpool.sock";
  }
  if (::getuid() == 0) return "/run/procpool/procpool.sock";
  return "/tmp/procpool-" + std::to_string(::getuid()) + "/procpool.sock";
}

ControlEndpoint open_control_endpoint(const std::string& socket_path,
                                      std::optional<unsigned> group) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (socket_path.empty() || socket_path.size() >= sizeof address.sun_path) {
    throw ControlEndpointError(
        Kind::BadPath, "control socket path '" + socket_path + "' is empty or longer than " +
                           std::to_string(sizeof address.sun_path - 1) + " bytes");
  }
  ensure_private_directory(parent_of(socket_path), group);
  ControlEndpoint endpoint;
  endpoint.socket_path = socket_path;
  endpoint.lock_path = socket_path + ".lock";
  // The lock file is removed by the daemon that held it, at its exit, still holding it: a
  // daemon that locked it meanwhile then holds a file no longer at that path, and tries again.
  for (;;) {
    endpoint.lock = UniqueFd(
        ::open(endpoint.lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!endpoint.lock) fail("open " + endpoint.lock_path, errno);
    if (::flock(endpoint.lock.get(), LOCK_EX | LOCK_NB) != 0) {
      const int code = errno;
      if (code == EWOULDBLOCK) {
        const int holder = read_holder(endpoint.lock.get());
        throw ControlEndpointError(Kind::InUse,
                                   "another procpool daemon is running on " + socket_path +
                                       (holder != 0 ? " (pid " + std::to_string(holder) + ")" : ""),
                                   code, holder);
      }
      fail("flock " + endpoint.lock_path, code);
    }
    struct stat held {
    }, there{};
    if (::fstat(endpoint.lock.get(), &held) != 0) fail("fstat " + endpoint.lock_path, errno);
    if (::stat(endpoint.lock_path.c_str(), &there) == 0 && there.st_ino == held.st_ino &&
        there.st_dev == held.st_dev) {
      break;
    }
  }
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(endpoint.lock.get(), 0) != 0 ||
      ::pwrite(endpoint.lock.get(), pid.data(), pid.size(), 0) !=
          static_cast<ssize_t>(pid.size())) {
    fail("write " + endpoint.lock_path, errno);
  }
  // We hold the lock: whatever socket file is there was left by a daemon that died.
  if (::unlink(socket_path.c_str()) != 0 && errno != ENOENT) fail("unlink " + socket_path, errno);
  endpoint.listen = UniqueFd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!endpoint.listen) fail("socket", errno);
  std::memcpy(address.sun_path, socket_path.c_str(), socket_path.size() + 1);
  // 0600 from the start: no moment in which another user could connect.
  const mode_t previous = ::umask(0177);
  const int bound =
      ::bind(endpoint.listen.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address);
  const int bind_error = errno;
  ::umask(previous);
  if (bound != 0) fail("bind " + socket_path, bind_error);
  // The group's once it is the group's, never before.
  if (group &&
      (::chown(socket_path.c_str(), static_cast<uid_t>(-1), static_cast<gid_t>(*group)) != 0 ||
       ::chmod(socket_path.c_str(), 0660) != 0)) {
    fail("chown/chmod " + socket_path, errno);
  }
  if (::listen(endpoint.listen.get(), 64) != 0) fail("listen " + socket_path, errno);
  return endpoint;
}

void close_control_endpoint(ControlEndpoint& endpoint) noexcept {
  if (endpoint.listen) {
    ::unlink(endpoint.socket_path.c_str());
    endpoint.listen.reset();
  }
  if (endpoint.lock) {
    ::unlink(endpoint.lock_path.c_str());
    endpoint.lock.reset();
  }
}

}  // namespace procpool::tool
