// NotifySocket (supervisor/process/notify_socket.hpp): the sd_notify parser on untrusted input,
// the socket's private directory and modes, the sender's pid, and what is dropped.

#include "notify_socket.hpp"

#include <gtest/gtest.h>
#include <sys/socket.h>  // socket, sendmsg
#include <sys/stat.h>    // stat
#include <sys/un.h>      // sockaddr_un
#include <sys/wait.h>    // waitpid
#include <unistd.h>      // getpid, pipe, fork

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

}  // namespace
}  // namespace procpool::detail

// A SIGKILLed supervisor leaves its directory behind: the next NotifySocket of the same user
// removes it once its pid is gone, and leaves a live process's, and one holding other files.
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

  const auto make = [&](const std::string& name, bool socket_file, bool other_file) {
    const std::filesystem::path dir = parent / name;
    std::filesystem::create_directory(dir);
    if (socket_file) std::ofstream(dir / "notify").put('x');
    if (other_file) std::ofstream(dir / "something-else").put('x');
    return dir;
  };
  const auto dead = make("procpool-notify-" + std::to_string(child) + "-abcdef", true, false);
  const auto dead_busy = make("procpool-notify-" + std::to_string(child) + "-ghijkl", true, true);
  const auto live = make("procpool-notify-" + std::to_string(::getppid()) + "-mnopqr", true, false);
  const auto unrelated = make("procpool-notify-notapid", false, false);

  procpool::detail::remove_stale_notify_dirs(parent.string());
  EXPECT_FALSE(std::filesystem::exists(dead));
  EXPECT_TRUE(std::filesystem::exists(dead_busy));
  EXPECT_FALSE(std::filesystem::exists(dead_busy / "notify"));
  EXPECT_TRUE(std::filesystem::exists(live / "notify"));
  EXPECT_TRUE(std::filesystem::exists(unrelated));

  // NotifySocket does it on construction, under TMPDIR.
  const auto dead_again = make("procpool-notify-" + std::to_string(child) + "-stuvwx", true, false);
  const char* old_tmpdir = std::getenv("TMPDIR");
  const std::string saved = old_tmpdir != nullptr ? old_tmpdir : "";
  ::setenv("TMPDIR", parent.c_str(), 1);
  {
    procpool::detail::NotifySocket socket;
    EXPECT_EQ(std::filesystem::path(socket.path()).parent_path().parent_path(), parent);
    EXPECT_FALSE(std::filesystem::exists(dead_again));
  }
  if (old_tmpdir != nullptr) {
    ::setenv("TMPDIR", saved.c_str(), 1);
  } else {
    ::unsetenv("TMPDIR");
  }
  std::filesystem::remove_all(parent);
}
