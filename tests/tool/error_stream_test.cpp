// ErrorStream::relay_line, the sink of the workers' output in `procpool map`: it runs on the
// pool's supervisor thread, so a standard error nobody reads must cost the pool one bounded
// wait, not one per line.
#include "common/error_stream.hpp"

#include <fcntl.h>   // pipe2, fcntl
#include <unistd.h>  // read, write, close

#include <chrono>  // durations
#include <string>  // std::string

#include <gtest/gtest.h>

namespace procpool::tool {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

struct Pipe {
  int read_end = -1, write_end = -1;
  Pipe() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) == 0) {
      read_end = fds[0];
      write_end = fds[1];
    }
  }
  ~Pipe() {
    ::close(read_end);
    ::close(write_end);
  }
  // Fills it (the write end stays blocking, as a host's stderr usually is).
  void fill() const {
    const int flags = ::fcntl(write_end, F_GETFL);
    ::fcntl(write_end, F_SETFL, flags | O_NONBLOCK);
    const std::string block(4096, 'f');
    while (::write(write_end, block.data(), block.size()) > 0) {
    }
    ::fcntl(write_end, F_SETFL, flags);
  }
  std::string drain() const {
    const int flags = ::fcntl(read_end, F_GETFL);
    ::fcntl(read_end, F_SETFL, flags | O_NONBLOCK);
    std::string out;
    char buffer[65536];
    for (ssize_t n; (n = ::read(read_end, buffer, sizeof buffer)) > 0;) {
      out.append(buffer, static_cast<std::size_t>(n));
    }
    ::fcntl(read_end, F_SETFL, flags);
    return out;
  }
};

TEST(ErrorStream, RelayedLinesEndWithANewline) {
  const Pipe pipe;
  ASSERT_GE(pipe.read_end, 0);
  ErrorStream stream(pipe.write_end, false);
  stream.relay_line("one");
  stream.relay_line("");
  stream.relay_line("two");
  EXPECT_EQ(pipe.drain(), "one\n\ntwo\n");
  EXPECT_EQ(stream.dropped_lines(), 0u);
}

TEST(ErrorStream, RelayEndsAnUnfinishedProgressLineFirst) {
  const Pipe pipe;
  ASSERT_GE(pipe.read_end, 0);
  ErrorStream stream(pipe.write_end, false);
  stream.progress("\r10 done", false);
  stream.relay_line("worker says");
  EXPECT_EQ(pipe.drain(), "\r10 done\nworker says\n");
}

TEST(ErrorStream, UnreadStderrCostsOneBoundedWaitThenLinesAreDroppedAtOnce) {
  const Pipe pipe;
  ASSERT_GE(pipe.read_end, 0);
  pipe.fill();
  ErrorStream stream(pipe.write_end, false);
  const auto started = Clock::now();
  stream.relay_line("lost");
  EXPECT_EQ(stream.dropped_lines(), 1u);
  // Were each line to wait ErrorStream::kRelayWait, these would take 200 s.
  for (int i = 0; i < 1000; ++i) stream.relay_line("lost too");
  EXPECT_LT(Clock::now() - started, 30s);
  EXPECT_EQ(stream.dropped_lines(), 1001u);
  // Once the reader catches up, lines go through again.
  pipe.drain();
  stream.relay_line("back");
  EXPECT_EQ(pipe.drain(), "back\n");
  EXPECT_EQ(stream.dropped_lines(), 1001u);
}

}  // namespace
}  // namespace procpool::tool
