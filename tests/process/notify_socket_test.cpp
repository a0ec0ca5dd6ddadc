// NotifySocket (supervisor/process/notify_socket.hpp): the sd_notify parser on untrusted input,
// the socket's private directory and modes, the sender's pid, and what is dropped.

#include "notify_socket.hpp"

#include <fcntl.h>  // open
#include <gtest/gtest.h>
#include <poll.h>        // poll
#include <sys/file.h>    // flock
#include <sys/socket.h>  // socket, sendmsg
#include <sys/stat.h>    // stat
#include <sys/un.h>      // sockaddr_un
#include <sys/wait.h>    // waitpid
#include <unistd.h>      // getpid, pipe, fork

#include <cerrno>      // errno
#include <cstdlib>     // getenv, setenv
#include <cstring>     // std::memcpy
#include <filesystem>  // std::filesystem
#include <fstream>     // std::ofstream
#include <string>      // std::string
#include <vector>      // std::vector

namespace procpool::detail {
namespace {

TEST(NotifyParse, KnownKeysUnknownIgnoredLastWins) {
  const NotifyMessage m = parse_notify("READY=1\nFOO=bar\nSTATUS=one\nSTATUS=two\nnoequals\n");
  EXPECT_TRUE(m.ready);
  EXPECT_FALSE(m.watchdog);
  EXPECT_FALSE(m.stopping);
  ASSERT_TRUE(m.status.has_value());
  EXPECT_EQ(*m.status, "two");
  EXPECT_TRUE(parse_notify("WATCHDOG=1").watchdog);
  EXPECT_TRUE(parse_notify("STOPPING=1").stopping);
  EXPECT_FALSE(parse_notify("READY=0").ready);
  EXPECT_FALSE(parse_notify("").ready);
  EXPECT_EQ(parse_notify("STATUS=" + std::string(1000, 'x')).status->size(),
            NotifySocket::kMaxStatus);
}

void send_to(const std::string& path, const std::string& message, int fd_to_pass = -1) {
  const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  iovec iov{const_cast<char*>(message.data()), message.size()};
  msghdr msg{};
  msg.msg_name = &addr;
  msg.msg_namelen = sizeof addr;
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
  if (fd_to_pass >= 0) {
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &fd_to_pass, sizeof(int));
  }
  EXPECT_EQ(::sendmsg(fd, &msg, 0), static_cast<ssize_t>(message.size()));
  ::close(fd);
}

std::size_t open_fd_count() {
  std::size_t n = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator("/proc/self/fd"))
    ++n;
  return n;
}

TEST(NotifySocketTest, PrivateDirectoryOwnerOnlySocketRemovedOnDestruction) {
  std::string path, dir;
  {
    NotifySocket socket;
    path = socket.path();
    dir = std::filesystem::path(path).parent_path().string();
    struct stat st {};
    ASSERT_EQ(::stat(dir.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0700u);
    ASSERT_EQ(::stat(path.c_str(), &st), 0);
    EXPECT_TRUE(S_ISSOCK(st.st_mode));
    EXPECT_EQ(st.st_mode & 0777, 0600u);
  }
  EXPECT_FALSE(std::filesystem::exists(path));
  EXPECT_FALSE(std::filesystem::exists(dir));
}

TEST(NotifySocketTest, ReportsTheSendersPidDropsOversizeAndClosesPassedFds) {
  NotifySocket socket;
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  send_to(socket.path(), "READY=1");
  send_to(socket.path(), "READY=1\nSTATUS=" + std::string(NotifySocket::kMaxDatagram, 'x'));
  send_to(socket.path(), "WATCHDOG=1", pipe_fds[0]);
  ::close(pipe_fds[0]);
  ::close(pipe_fds[1]);
  const std::size_t fds_before = open_fd_count();
  std::vector<std::pair<int, NotifyMessage>> got;
  socket.receive([&](int pid, const NotifyMessage& m) { got.emplace_back(pid, m); });
  EXPECT_EQ(open_fd_count(), fds_before);  // the passed fd was received and closed
  ASSERT_EQ(got.size(), 2u);               // the oversize datagram was dropped whole
  EXPECT_EQ(got[0].first, ::getpid());
  EXPECT_TRUE(got[0].second.ready);
  EXPECT_TRUE(got[1].second.watchdog);
  EXPECT_FALSE(got[1].second.ready);
}

// A notify directory as NotifySocket leaves it: the socket file (a plain file does here), and
// the lock file unless `lock_file` is false. Nobody holds the lock.
std::filesystem::path make_notify_dir(const std::filesystem::path& dir, bool lock_file) {
  std::filesystem::create_directory(dir);
  std::ofstream(dir / "notify").put('x');
  if (lock_file) std::ofstream(dir / "lock").put('x');
  return dir;
}

}  // namespace
}  // namespace procpool::detail

using procpool::detail::make_notify_dir;

// A SIGKILLed supervisor leaves its directory behind, its lock file in it unlocked: the next
// NotifySocket of the same user removes it, and leaves one without a lock file, and one holding
// other files.
TEST(NotifySocketTest, DirectoriesOfDeadSupervisorsAreRemovedAtTheNextStart) {
  std::string parent_pattern =
      (std::filesystem::temp_directory_path() / "procpool-notify-test-XXXXXX").string();
  ASSERT_NE(::mkdtemp(parent_pattern.data()), nullptr);
  const std::filesystem::path parent = parent_pattern;

  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) ::_exit(0);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);  // reaped: the pid names nobody now
  const std::string dead_pid = std::to_string(child);

  const auto dead = make_notify_dir(parent / ("procpool-notify-" + dead_pid + "-abcdef"), true);
  const auto dead_busy =
      make_notify_dir(parent / ("procpool-notify-" + dead_pid + "-ghijkl"), true);
  std::ofstream(dead_busy / "something-else").put('x');
  // No lock file: one being set up, or one of a version without locks. Its pid says nothing.
  const auto unlocked =
      make_notify_dir(parent / ("procpool-notify-" + dead_pid + "-mnopqr"), false);
  const auto unrelated = parent / "procpool-notify-notapid";
  std::filesystem::create_directory(unrelated);
  std::ofstream(unrelated / "notify").put('x');
  std::ofstream(unrelated / "lock").put('x');

  procpool::detail::remove_stale_notify_dirs(parent.string());
  EXPECT_FALSE(std::filesystem::exists(dead));
  EXPECT_TRUE(std::filesystem::exists(dead_busy / "something-else"));
  EXPECT_FALSE(std::filesystem::exists(dead_busy / "notify"));
  EXPECT_TRUE(std::filesystem::exists(unlocked / "notify"));
  EXPECT_TRUE(std::filesystem::exists(unrelated / "notify"));

  // NotifySocket does it on construction, under TMPDIR, and holds its own directory's lock.
  const auto dead_again =
      make_notify_dir(parent / ("procpool-notify-" + dead_pid + "-stuvwx"), true);
  const char* old_tmpdir = std::getenv("TMPDIR");
  const std::string saved = old_tmpdir != nullptr ? old_tmpdir : "";
  ::setenv("TMPDIR", parent.c_str(), 1);
  {
    procpool::detail::NotifySocket socket;
    const std::filesystem::path own = std::filesystem::path(socket.path()).parent_path();
    EXPECT_EQ(own.parent_path(), parent);
    EXPECT_FALSE(std::filesystem::exists(dead_again));
    const int lock = ::open((own / "lock").c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_GE(lock, 0);
    EXPECT_NE(::flock(lock, LOCK_EX | LOCK_NB), 0);
    EXPECT_EQ(errno, EWOULDBLOCK);
    ::close(lock);
    procpool::detail::NotifySocket second;  // its sweep leaves the first one's directory
    EXPECT_TRUE(std::filesystem::exists(socket.path()));
  }
  if (old_tmpdir != nullptr) {
    ::setenv("TMPDIR", saved.c_str(), 1);
  } else {
    ::unsetenv("TMPDIR");
  }
  std::filesystem::remove_all(parent);
}

// In a TMPDIR shared with another pid namespace, a directory's pid names nobody here, or someone
// else: only the lock tells. One whose lock another process holds stays, whatever its pid.
TEST(NotifySocketTest, ADirectoryWhoseLockIsHeldStaysWhateverItsPid) {
  std::string parent_pattern =
      (std::filesystem::temp_directory_path() / "procpool-notify-test-XXXXXX").string();
  ASSERT_NE(::mkdtemp(parent_pattern.data()), nullptr);
  const std::filesystem::path parent = parent_pattern;

  const pid_t gone = ::fork();
  ASSERT_GE(gone, 0);
  if (gone == 0) ::_exit(0);
  ASSERT_EQ(::waitpid(gone, nullptr, 0), gone);
  const std::string dead_pid = std::to_string(gone);
  const auto held = make_notify_dir(parent / ("procpool-notify-" + dead_pid + "-held00"), true);
  const auto unheld = make_notify_dir(parent / ("procpool-notify-" + dead_pid + "-free00"), true);

  // The holder: takes the lock, says so, and keeps it until `release` is closed.
  int ready[2], release[2];
  ASSERT_EQ(::pipe2(ready, O_CLOEXEC), 0);
  ASSERT_EQ(::pipe2(release, O_CLOEXEC), 0);
  const pid_t holder = ::fork();
  ASSERT_GE(holder, 0);
  if (holder == 0) {
    ::close(ready[0]);
    ::close(release[1]);
    const int lock = ::open((held / "lock").c_str(), O_RDONLY | O_CLOEXEC);
    if (lock < 0 || ::flock(lock, LOCK_EX) != 0) ::_exit(1);
    if (::write(ready[1], "x", 1) != 1) ::_exit(1);
    char byte;
    while (::read(release[0], &byte, 1) > 0) {
    }
    ::_exit(0);
  }
  ::close(ready[1]);
  ::close(release[0]);
  pollfd locked{ready[0], POLLIN, 0};
  const bool holding = ::poll(&locked, 1, 20000) == 1 && (locked.revents & POLLIN) != 0;
  char byte = 0;
  const bool said = holding && ::read(ready[0], &byte, 1) == 1;

  if (said) procpool::detail::remove_stale_notify_dirs(parent.string());
  ::close(release[1]);
  int status = 0;
  ASSERT_EQ(::waitpid(holder, &status, 0), holder);
  ::close(ready[0]);
  ASSERT_TRUE(said) << "the holder did not take the lock";
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  EXPECT_TRUE(std::filesystem::exists(held / "notify"));
  EXPECT_TRUE(std::filesystem::exists(held / "lock"));
  EXPECT_FALSE(std::filesystem::exists(unheld));

  // The holder is gone, and its lock with it: now that directory is stale.
  procpool::detail::remove_stale_notify_dirs(parent.string());
  EXPECT_FALSE(std::filesystem::exists(held));
  std::filesystem::remove_all(parent);
}
