#pragma once

// What the output sink tests (fd_sink_test.cpp, output_capture_test.cpp, rotating_file_test.cpp)
// share: a private temporary directory, and a way to run a call that must not block in a child
// process, so that a call that does block fails the test in bounded time instead of hanging it.

#include <fcntl.h>  // O_CLOEXEC
#include <gtest/gtest.h>
#include <poll.h>      // poll
#include <signal.h>    // kill, SIGKILL
#include <sys/wait.h>  // waitpid
#include <unistd.h>    // fork, pipe2, read, write, _exit

#include <cerrno>      // errno
#include <chrono>      // std::chrono
#include <cstdlib>     // mkdtemp
#include <filesystem>  // std::filesystem
#include <fstream>     // std::ifstream
#include <functional>  // std::function
#include <iterator>    // std::istreambuf_iterator
#include <optional>    // std::optional
#include <string>      // std::string

#include "../common/test_timing.hpp"

namespace procpool::test {

// Generous: the waits end as soon as what they wait for happens.
inline constexpr std::chrono::milliseconds kOutputTimeout =
    scaled(std::chrono::milliseconds(20000));

class OutputTempDir {
 public:
  OutputTempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "procpool-output-XXXXXX");
    if (::mkdtemp(pattern.data()) == nullptr) ADD_FAILURE() << "mkdtemp: " << errno;
    path_ = pattern;
  }
  ~OutputTempDir() {
    std::error_code ec;
    std::filesystem::permissions(path_, std::filesystem::perms::owner_all, ec);
    std::filesystem::remove_all(path_, ec);
  }
  OutputTempDir(const OutputTempDir&) = delete;
  OutputTempDir& operator=(const OutputTempDir&) = delete;

  std::string path() const { return path_.string(); }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

// The file's contents, or "<missing>".
inline std::string contents(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "<missing>";
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Runs `body` in a forked child and returns what it returned, or nothing when the child did not
// finish within `limit` (it is then SIGKILLed and reaped).
inline std::optional<std::string> run_in_child(const std::function<std::string()>& body,
                                               std::chrono::milliseconds limit) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    ADD_FAILURE() << "pipe2: " << errno;
    return std::nullopt;
  }
  const pid_t child = ::fork();
  if (child < 0) {
    ADD_FAILURE() << "fork: " << errno;
    ::close(fds[0]);
    ::close(fds[1]);
    return std::nullopt;
  }
  if (child == 0) {
    ::close(fds[0]);
    const std::string result = body();
    const ssize_t n = ::write(fds[1], result.data(), result.size());
    ::_exit(n == static_cast<ssize_t>(result.size()) ? 0 : 1);
  }
  ::close(fds[1]);
  std::string result;
  bool finished = false;
  const auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    pollfd readable{fds[0], POLLIN, 0};
    const int ready = ::poll(&readable, 1, static_cast<int>(left.count()));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) break;
    char buffer[256];
    const ssize_t n = ::read(fds[0], buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {  // EOF: the child is done
      finished = n == 0;
      break;
    }
    result.append(buffer, static_cast<std::size_t>(n));
  }
  ::close(fds[0]);
  if (!finished) ::kill(child, SIGKILL);
  int status = 0;
  ::waitpid(child, &status, 0);
  if (!finished) return std::nullopt;
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child status " << status;
  return result;
}

}  // namespace procpool::test
