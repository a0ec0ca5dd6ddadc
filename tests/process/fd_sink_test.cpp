// FdSink (supervisor/process/output_capture.hpp): no write blocks the supervisor's loop, whatever
// the fd is, and the caller's fd keeps its flags. Each write that must not block runs in a child
// process (output_test_support.hpp), so a blocking one fails the test instead of hanging it.

#include <fcntl.h>       // fcntl, open, posix_openpt
#include <stdlib.h>      // grantpt, unlockpt, ptsname
#include <sys/socket.h>  // socketpair, recv
#include <unistd.h>      // close, pipe2

#include <cstdint>  // std::uint64_t
#include <cstring>  // std::strerror
#include <string>   // std::string

#include "output_capture.hpp"
#include "output_test_support.hpp"

namespace procpool::test {
namespace {

using detail::FdSink;

constexpr std::size_t kChunk = 64 * 1024;  // what one OutputCapture::read_some() hands over
constexpr std::size_t kChunks = 64;        // 4 MiB: more than any socket or pty buffers

// kChunks chunks of 64 KiB lines ('\n' every 64 bytes), written as the capture would; returns
// dropped() as text.
std::string write_a_lot(int fd) {
  FdSink sink(fd);
  std::string chunk(kChunk, 'x');
  for (std::size_t i = 63; i < chunk.size(); i += 64) chunk[i] = '\n';
  for (std::size_t i = 0; i < kChunks; ++i) sink.write(chunk);
  return std::to_string(sink.dropped());
}

// What the peer can read now, without waiting.
std::uint64_t drain(int fd) {
  std::uint64_t total = 0;
  char buffer[64 * 1024];
  for (;;) {
    const ssize_t n = ::recv(fd, buffer, sizeof buffer, MSG_DONTWAIT);
    if (n <= 0) return total;
    total += static_cast<std::uint64_t>(n);
  }
}

TEST(OutputFdSink, SocketWhoseReaderNeverReadsDropsInsteadOfBlocking) {
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  const int flags = ::fcntl(sv[0], F_GETFL);
  ASSERT_EQ(flags & O_NONBLOCK, 0);  // a dup of it blocks: what FdSink must not do

  const std::optional<std::string> dropped =
      run_in_child([&] { return write_a_lot(sv[0]); }, kOutputTimeout);
  ASSERT_TRUE(dropped.has_value()) << "FdSink::write blocked on a socket nobody reads";
  const std::uint64_t total = kChunk * kChunks;
  EXPECT_GT(std::stoull(*dropped), 0u);
  // Every byte is either in the socket, in order, or counted as dropped.
  EXPECT_EQ(drain(sv[1]) + std::stoull(*dropped), total);
  EXPECT_EQ(::fcntl(sv[0], F_GETFL), flags);  // the open file description is shared with the child
  ::close(sv[0]);
  ::close(sv[1]);
}

TEST(OutputFdSink, SocketWithRoomGetsEveryByte) {
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  FdSink sink(sv[0]);
  sink.write("one\ntwo\n");
  sink.write(std::string(1000, 'z'));
  EXPECT_EQ(sink.dropped(), 0u);
  EXPECT_EQ(drain(sv[1]), 8u + 1000u);
  ::close(sv[0]);
  ::close(sv[1]);
}

// A terminal: the supervisor's stdout is often one. With '\n' in the output ONLCR makes each
// newline two bytes, so POLLOUT promises less room than a PIPE_BUF write needs; the sink must not
// rely on it.
TEST(OutputFdSink, TerminalWhoseReaderStoppedDropsInsteadOfBlocking) {
  const int master = ::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (master < 0) GTEST_SKIP() << "no pty here: " << std::strerror(errno);
  ASSERT_EQ(::grantpt(master), 0);
  ASSERT_EQ(::unlockpt(master), 0);
  const int slave = ::open(::ptsname(master), O_RDWR | O_NOCTTY | O_CLOEXEC);
  ASSERT_GE(slave, 0) << std::strerror(errno);
  const int flags = ::fcntl(slave, F_GETFL);
  ASSERT_EQ(flags & O_NONBLOCK, 0);

  // Nobody reads the master until the child is done.
  const std::optional<std::string> dropped =
      run_in_child([&] { return write_a_lot(slave); }, kOutputTimeout);
  ASSERT_TRUE(dropped.has_value()) << "FdSink::write blocked on a terminal nobody reads";
  EXPECT_GT(std::stoull(*dropped), 0u);
  EXPECT_LT(std::stoull(*dropped), kChunk * kChunks);  // what fitted went
  EXPECT_EQ(::fcntl(slave, F_GETFL), flags);
  ::close(slave);
  ::close(master);
}

TEST(OutputFdSink, PipeWhoseReaderNeverReadsDropsAndKeepsTheCallersFlags) {
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  const int flags = ::fcntl(fds[1], F_GETFL);
  const std::optional<std::string> dropped =
      run_in_child([&] { return write_a_lot(fds[1]); }, kOutputTimeout);
  ASSERT_TRUE(dropped.has_value()) << "FdSink::write blocked on a full pipe";
  const int pipe_size = ::fcntl(fds[0], F_GETPIPE_SZ);
  ASSERT_GT(pipe_size, 0);
  EXPECT_EQ(std::stoull(*dropped), kChunk * kChunks - static_cast<std::uint64_t>(pipe_size));
  EXPECT_EQ(::fcntl(fds[1], F_GETFL), flags);
  ::close(fds[0]);
  ::close(fds[1]);
}

// A character device that is no terminal is written PIPE_BUF at a time after poll(): all of it
// goes when the device takes it.
TEST(OutputFdSink, CharacterDeviceTakesEveryByteItAccepts) {
  const int null = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
  ASSERT_GE(null, 0);
  FdSink sink(null);
  sink.write(std::string(3 * kChunk + 17, 'x'));
  EXPECT_EQ(sink.dropped(), 0u);
  ::close(null);
}

TEST(OutputFdSink, RegularFileGetsEveryByte) {
  OutputTempDir dir;
  const std::string path = dir.file("out");
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  ASSERT_GE(fd, 0);
  FdSink sink(fd);
  sink.write("hello ");
  sink.write("world\n");
  EXPECT_EQ(sink.dropped(), 0u);
  EXPECT_EQ(contents(path), "hello world\n");
  ::close(fd);
}

}  // namespace
}  // namespace procpool::test
