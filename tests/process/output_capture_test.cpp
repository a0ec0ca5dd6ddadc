// OutputCapture (supervisor/process/output_capture.hpp): finish() takes what the pipe holds and
// returns, even while a writer outside the process group keeps writing.

#include <fcntl.h>     // fcntl, F_GETPIPE_SZ
#include <poll.h>      // poll
#include <signal.h>    // kill
#include <sys/wait.h>  // waitpid
#include <unistd.h>    // fork, write

#include <atomic>  // std::atomic
#include <future>  // std::promise
#include <memory>  // std::make_shared
#include <string>  // std::string
#include <thread>  // std::thread
#include <vector>  // std::vector

#include "output_capture.hpp"
#include "output_test_support.hpp"

namespace procpool::test {
namespace {

using detail::OutputCapture;
using detail::SinkSet;

TEST(OutputCapture, FinishDeliversWhatIsLeftAndThePartialLastLine) {
  std::vector<std::string> lines;
  auto sinks = std::make_shared<SinkSet>();
  sinks->on_line = [&](std::string_view, std::string_view line) { lines.emplace_back(line); };
  OutputCapture capture(sinks, "talker:0", nullptr);
  // More than one read's buffer, so finish() has to loop.
  const std::string long_line(40 * 1024, 'l');
  const std::string text = "one\n" + long_line + "\ntwo\npartial";
  ASSERT_EQ(::write(capture.write_fd(), text.data(), text.size()),
            static_cast<ssize_t>(text.size()));
  capture.close_write_end();
  capture.finish();
  EXPECT_TRUE(capture.done());
  EXPECT_EQ(lines, (std::vector<std::string>{"one", long_line, "two", "partial"}));
}

// A grandchild that setsid'd keeps the pipe and never stops writing. The line callback waits for
// the writer to have refilled the pipe before it returns, so a finish() that reads until EAGAIN
// would never see it and never return.
TEST(OutputCapture, FinishReturnsWhileAWriterOutsideTheGroupKeepsWriting) {
  std::atomic<std::uint64_t> delivered{0};
  std::atomic<int> read_fd{-1};
  auto sinks = std::make_shared<SinkSet>();
  sinks->on_line = [&](std::string_view, std::string_view line) {
    delivered += line.size() + 1;
    pollfd more{read_fd.load(), POLLIN, 0};
    ::poll(&more, 1, 1000);
  };
  OutputCapture capture(sinks, "chatty:0", nullptr);
  read_fd = capture.read_fd();

  const pid_t writer = ::fork();
  ASSERT_GE(writer, 0);
  if (writer == 0) {
    ::close(capture.read_fd());
    const std::string line = std::string(99, 'w') + "\n";
    for (;;) {
      if (::write(capture.write_fd(), line.data(), line.size()) < 0) ::_exit(1);
    }
  }
  capture.close_write_end();
  pollfd first{capture.read_fd(), POLLIN, 0};
  ASSERT_EQ(::poll(&first, 1, static_cast<int>(kOutputTimeout.count())), 1);
  const int pipe_size = ::fcntl(capture.read_fd(), F_GETPIPE_SZ);
  ASSERT_GT(pipe_size, 0);

  std::promise<void> finished;
  std::thread finisher([&] {
    capture.finish();
    finished.set_value();
  });
  const bool returned = finished.get_future().wait_for(kOutputTimeout) == std::future_status::ready;
  // If it did not, the writer's death ends the pipe and lets finish() return.
  ::kill(writer, SIGKILL);
  ::waitpid(writer, nullptr, 0);
  finisher.join();
  EXPECT_TRUE(returned) << "finish() kept reading a writer that never stops";
  EXPECT_TRUE(capture.done());
  EXPECT_GT(delivered.load(), 0u);
  // What the pipe held when finish() began, at most a pipe's worth (+1: the partial last line).
  EXPECT_LE(delivered.load(), static_cast<std::uint64_t>(pipe_size) + 1);
}

}  // namespace
}  // namespace procpool::test
