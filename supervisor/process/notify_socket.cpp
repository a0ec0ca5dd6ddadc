#include "notify_socket.hpp"

#include <dirent.h>      // opendir, readdir
#include <fcntl.h>       // open
#include <sys/file.h>    // flock
#include <sys/socket.h>  // socket, bind, recvmsg
#include <sys/stat.h>    // chmod
#include <sys/un.h>      // sockaddr_un
#include <unistd.h>      // unlink, rmdir

#include <cerrno>      // errno
#include <charconv>    // std::from_chars
#include <cstring>     // std::memcpy
#include <filesystem>  // std::filesystem::temp_directory_path
#include <vector>      // std::vector

#include "procpool/error.hpp"

namespace procpool::detail {

NotifyMessage parse_notify(std::string_view datagram) {
  NotifyMessage message;
  while (!datagram.empty()) {
    const auto end = datagram.find('\n');
    const std::string_view line = datagram.substr(0, end);
    datagram = end == std::string_view::npos ? std::string_view{} : datagram.substr(end + 1);
    const auto eq = line.find('=');
    if (eq == std::string_view::npos) continue;
    const std::string_view key = line.substr(0, eq);
    const std::string_view value = line.substr(eq + 1);
    if (key == "READY") {
      message.ready = value == "1";
    } else if (key == "WATCHDOG") {
      message.watchdog = value == "1";
    } else if (key == "STOPPING") {
      message.stopping = value == "1";
    } else if (key == "STATUS") {
      message.status = std::string(value.substr(0, NotifySocket::kMaxStatus));
    }
  }
  return message;
}

namespace {

constexpr std::string_view kDirPrefix = "procpool-notify-";
constexpr std::string_view kSocketName = "/notify";
constexpr std::string_view kLockName = "/lock";

// "procpool-notify-<pid>-XXXXXX". The pid only names the directory: it says nothing of whether
// its supervisor lives (see notify_socket.hpp).
bool is_notify_dir_name(std::string_view name) noexcept {
  if (!name.starts_with(kDirPrefix)) return false;
  name.remove_prefix(kDirPrefix.size());
  int pid = 0;
  const auto [end, ec] = std::from_chars(name.data(), name.data() + name.size(), pid);
  return ec == std::errc{} && end != name.data() + name.size() && *end == '-' && pid > 0;
}

// The lock of the directory `dir`, taken, if it is a regular file of ours that nobody holds;
// else none.
UniqueFd take_abandoned_lock(const std::string& dir, uid_t me) noexcept {
  const std::string path = dir + std::string(kLockName);
  UniqueFd lock(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY));
  if (!lock) return {};
  struct stat held {};
  if (::fstat(lock.get(), &held) != 0 || !S_ISREG(held.st_mode) || held.st_uid != me) return {};
  // EWOULDBLOCK: a live supervisor holds it, in whichever pid namespace.
  if (::flock(lock.get(), LOCK_EX | LOCK_NB) != 0) return {};
  // Still the file at that name: not one that its owner's destructor, or another sweeping
  // supervisor, unlinked between our open() and flock().
  struct stat named {};
  if (::lstat(path.c_str(), &named) != 0 || named.st_dev != held.st_dev ||
      named.st_ino != held.st_ino) {
    return {};
  }
  return lock;
}

}  // namespace

void remove_stale_notify_dirs(const std::string& parent) noexcept {
  DIR* dir = ::opendir(parent.c_str());
  if (dir == nullptr) return;
  const uid_t me = ::geteuid();
  while (const dirent* entry = ::readdir(dir)) {
    if (!is_notify_dir_name(entry->d_name)) continue;
    const std::string path = parent + "/" + entry->d_name;
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != me) continue;
    // The socket first: NotifySocket binds it only once it holds the lock, so a directory
    // without it may be one whose lock is about to be taken.
    const std::string socket = path + std::string(kSocketName);
    if (::lstat(socket.c_str(), &st) != 0) continue;
    const UniqueFd lock = take_abandoned_lock(path, me);
    if (!lock) continue;
    // Only what NotifySocket puts there: a directory holding anything else stays.
    ::unlink(socket.c_str());
    ::unlink((path + std::string(kLockName)).c_str());
    ::rmdir(path.c_str());
  }
  ::closedir(dir);
}

NotifySocket::NotifySocket() {
  const std::string parent = std::filesystem::temp_directory_path().string();
  remove_stale_notify_dirs(parent);
  std::string pattern =
      parent + "/" + std::string(kDirPrefix) + std::to_string(::getpid()) + "-XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) throw_errno(errno, "mkdtemp " + pattern);
  dir_ = pattern;
  path_ = dir_ + std::string(kSocketName);
  const std::string lock_path = dir_ + std::string(kLockName);
  lock_.reset(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!lock_) {
    const int error = errno;
    ::rmdir(dir_.c_str());
    throw_errno(error, "notify lock " + lock_path);
  }
  // A file system without flock: no lock file, so no sweep ever removes this directory (a leak
  // after a SIGKILL, never a live supervisor's socket removed).
  if (::flock(lock_.get(), LOCK_EX | LOCK_NB) != 0) {
    ::unlink(lock_path.c_str());
    lock_.reset();
  }
  sockaddr_un addr{};
  if (path_.size() >= sizeof addr.sun_path) {
    remove_directory();
    throw Error("notify socket path too long: " + path_);
  }
  socket_.reset(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!socket_) {
    const int error = errno;
    remove_directory();
    throw_errno(error, "socket(AF_UNIX, SOCK_DGRAM)");
  }
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path_.c_str(), path_.size() + 1);
  const int one = 1;
  if (::bind(socket_.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 ||
      ::chmod(path_.c_str(), 0600) != 0 ||
      ::setsockopt(socket_.get(), SOL_SOCKET, SO_PASSCRED, &one, sizeof one) != 0) {
    const int error = errno;
    remove_directory();
    throw_errno(error, "notify socket " + path_);
  }
}

NotifySocket::~NotifySocket() { remove_directory(); }

// The lock goes last: until the directory is gone, a sweep must see it held.
void NotifySocket::remove_directory() noexcept {
  socket_.reset();
  ::unlink(path_.c_str());
  if (lock_) ::unlink((dir_ + std::string(kLockName)).c_str());
  ::rmdir(dir_.c_str());
  lock_.reset();
}

void NotifySocket::receive(const std::function<void(int pid, const NotifyMessage&)>& on_message) {
  constexpr int kBatch = 64;
  constexpr std::size_t kMaxFds = 16;
  char data[kMaxDatagram];
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(ucred)) + CMSG_SPACE(sizeof(int) * kMaxFds)];
  for (int i = 0; i < kBatch; ++i) {
    iovec iov{data, sizeof data};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    const ssize_t n = ::recvmsg(socket_.get(), &msg, MSG_CMSG_CLOEXEC | MSG_TRUNC | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;  // EAGAIN: drained
    }
    int pid = 0;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level != SOL_SOCKET) continue;
      if (c->cmsg_type == SCM_CREDENTIALS && c->cmsg_len >= CMSG_LEN(sizeof(ucred))) {
        ucred cred;
        std::memcpy(&cred, CMSG_DATA(c), sizeof cred);
        pid = cred.pid;
      } else if (c->cmsg_type == SCM_RIGHTS) {
        const std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (std::size_t k = 0; k < count; ++k) {
          int fd;
          std::memcpy(&fd, CMSG_DATA(c) + k * sizeof(int), sizeof fd);
          ::close(fd);  // we keep no fds from children
        }
      }
    }
    // MSG_TRUNC makes n the real length: an oversized datagram is dropped, not half-read.
    if (static_cast<std::size_t>(n) > sizeof data || (msg.msg_flags & MSG_TRUNC) != 0) continue;
    if (pid <= 0) continue;
    on_message(pid, parse_notify(std::string_view(data, static_cast<std::size_t>(n))));
  }
}

}  // namespace procpool::detail
