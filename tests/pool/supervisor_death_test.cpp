// When the process embedding a pool is SIGKILLed, its workers and the workers' own children are
// gone within 1 s (issue 4): PDEATHSIG takes the workers, and the worker SDK turns its
// PDEATHSIG into a kill of its process group, which takes the grandchildren. Nothing is left in
// /dev/shm (segments are memfds: there is nothing named to leave behind).
//
// The embedding process is pool_host (pool_host.cpp), started here with its stdout on a pipe.
// Every wait is bounded; the 1 s is the requirement under test, polled every 5 ms.

#include <dirent.h>  // opendir, readdir
#include <fcntl.h>   // O_CLOEXEC
#include <gtest/gtest.h>
#include <poll.h>      // poll
#include <signal.h>    // kill, SIGKILL
#include <spawn.h>     // posix_spawn
#include <sys/wait.h>  // waitpid
#include <unistd.h>    // pipe2, read, close

#include <chrono>   // durations
#include <fstream>  // std::ifstream
#include <set>      // std::set
#include <sstream>  // std::istringstream
#include <string>   // std::string
#include <thread>   // std::this_thread::sleep_for (polling a process state)
#include <vector>   // std::vector

#include "test_timing.hpp"  // scaled
#include "test_workers.hpp"

extern char** environ;

namespace procpool::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

std::set<std::string> dev_shm() {
  std::set<std::string> names;
  if (DIR* dir = ::opendir("/dev/shm")) {
    while (const dirent* entry = ::readdir(dir)) names.insert(entry->d_name);
    ::closedir(dir);
  }
  return names;
}

// Gone, or dead and waiting for init to reap it.
bool gone(int pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  const auto close_paren = text.rfind(')');
  if (close_paren == std::string::npos || close_paren + 2 >= text.size()) return true;
  const char state = text[close_paren + 2];
  return state == 'Z' || state == 'X';
}

// Reads one line from `fd` within `bound`.
std::string read_line(int fd, std::chrono::milliseconds bound) {
  std::string line;
  const auto deadline = Clock::now() + bound;
  while (line.find('\n') == std::string::npos && Clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (::poll(&p, 1, static_cast<int>(std::max<long long>(1, left.count()))) <= 0) continue;
    char buffer[256];
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n <= 0) break;
    line.append(buffer, static_cast<std::size_t>(n));
  }
  return line;
}

TEST(SupervisorDeath, WorkersAndTheirChildrenDieWithinOneSecond) {
  const std::set<std::string> shm_before = dev_shm();
  int out[2];
  ASSERT_EQ(::pipe2(out, O_CLOEXEC), 0);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  const std::string host = PROCPOOL_POOL_HOST;
  const std::string worker = worker_path("crashy");
  char* argv[] = {const_cast<char*>(host.c_str()), const_cast<char*>(worker.c_str()), nullptr};
  pid_t host_pid = -1;
  ASSERT_EQ(::posix_spawn(&host_pid, host.c_str(), &actions, nullptr, argv, environ), 0);
  posix_spawn_file_actions_destroy(&actions);
  ::close(out[1]);

  const std::string line = read_line(out[0], 20s);
  ::close(out[0]);
  std::istringstream words(line);
  std::string word;
  std::vector<int> pids;
  while (words >> word) {
    if (word.find_first_not_of("0123456789") == std::string::npos) pids.push_back(std::stoi(word));
  }
  if (pids.size() != 4) {
    ::kill(host_pid, SIGKILL);
    ::waitpid(host_pid, nullptr, 0);
    FAIL() << "pool_host said \"" << line << "\"";
  }
  for (const int pid : pids) ASSERT_FALSE(gone(pid)) << "pid " << pid << " before the kill";

  ASSERT_EQ(::kill(host_pid, SIGKILL), 0);
  int status = 0;
  ASSERT_EQ(::waitpid(host_pid, &status, 0), host_pid);
  const auto killed = Clock::now();
  auto all_gone = [&] {
    for (const int pid : pids) {
      if (!gone(pid)) return false;
    }
    return true;
  };
  while (!all_gone() && Clock::now() - killed < scaled(5s)) std::this_thread::sleep_for(5ms);
  const auto took = Clock::now() - killed;
  for (const int pid : pids) EXPECT_TRUE(gone(pid)) << "pid " << pid << " outlived its supervisor";
  EXPECT_LT(took, scaled(1s)) << "took "
                              << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
                              << " ms";
  EXPECT_EQ(dev_shm(), shm_before);
}

}  // namespace
}  // namespace procpool::test
