// `procpool map --retries` while a random worker is SIGKILLed every 100-250 ms: every line
// comes out, in order.

#include <dirent.h>       // opendir: a process's threads
#include <signal.h>       // SIGKILL
#include <sys/syscall.h>  // SYS_pidfd_open, SYS_pidfd_send_signal
#include <unistd.h>       // close

#include <atomic>              // the killer's count
#include <condition_variable>  // the killer's pause, cut short by stop()
#include <cstdio>              // std::printf: the chaos run's figures
#include <fstream>             // /proc files
#include <iterator>            // std::istreambuf_iterator
#include <mutex>               // the killer's stop flag
#include <optional>            // a killer started with the run
#include <random>              // which worker, how long a pause
#include <string>              // inputs and outputs
#include <thread>              // the killer

#include <vector>                     // arguments
#include "../common/test_timing.hpp"  // kTimingScale

#include <gtest/gtest.h>

#include "map_run_harness.hpp"

namespace procpool::map_test {
namespace {

// The worker processes of `procpool map` (pid): its children, which are listed per thread, since
// the pool's supervisor thread spawns them. Zombies (killed, not yet reaped) are left out.
std::vector<pid_t> live_children_of(pid_t pid) {
  std::vector<pid_t> children;
  const std::string tasks = "/proc/" + std::to_string(pid) + "/task";
  DIR* directory = ::opendir(tasks.c_str());
  if (directory == nullptr) return children;
  while (const dirent* entry = ::readdir(directory)) {
    if (entry->d_name[0] == '.') continue;
    std::ifstream list(tasks + "/" + entry->d_name + "/children");
    for (pid_t child = 0; list >> child;) {
      std::ifstream stat("/proc/" + std::to_string(child) + "/stat");
      std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
      const std::size_t name_end = text.rfind(')');
      if (name_end != std::string::npos && name_end + 2 < text.size() &&
          text[name_end + 2] != 'Z') {
        children.push_back(child);
      }
    }
  }
  ::closedir(directory);
  return children;
}

// SIGKILLs a random live worker of one `procpool map` run every 100-250 ms until stopped. A
// pid is signalled through a pidfd opened while it was listed, and only if it is still listed
// after: a worker that exited and was reaped in between cannot make it kill anything else.
class WorkerKiller {
 public:
  WorkerKiller(pid_t map, std::uint32_t seed) : thread_([this, map, seed] { run(map, seed); }) {}
  WorkerKiller(const WorkerKiller&) = delete;
  WorkerKiller& operator=(const WorkerKiller&) = delete;
  ~WorkerKiller() { stop(); }

  void stop() {
    {
      const std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    if (thread_.joinable()) thread_.join();
  }
  std::size_t kills() const { return kills_.load(); }

 private:
  void run(pid_t map, std::uint32_t seed) {
    std::mt19937 random(seed);
    std::uniform_int_distribution<int> pause_ms(100, 250);
    std::unique_lock lock(mutex_);
    while (!wake_.wait_for(lock, std::chrono::milliseconds(pause_ms(random)),
                           [this] { return stopping_; })) {
      lock.unlock();
      if (kill_one(map, random)) ++kills_;
      lock.lock();
    }
  }

  static bool kill_one(pid_t map, std::mt19937& random) {
    const std::vector<pid_t> workers = live_children_of(map);
    if (workers.empty()) return false;
    const pid_t victim =
        workers[std::uniform_int_distribution<std::size_t>(0, workers.size() - 1)(random)];
    const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, victim, 0));
    if (pidfd < 0) return false;
    const std::vector<pid_t> still = live_children_of(map);
    const bool killed = std::find(still.begin(), still.end(), victim) != still.end() &&
                        ::syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, nullptr, 0) == 0;
    ::close(pidfd);
    return killed;
  }

  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::atomic<std::size_t> kills_{0};
  std::thread thread_;  // last: started once the members it uses exist
};

// Line L of `text` (counted from 1) must read `first + L - 1`, for `count` lines; says where
// the first difference is.
std::string first_difference(const std::string& text, std::uint64_t first, std::uint64_t count) {
  std::size_t at = 0;
  for (std::uint64_t line = 1; line <= count; ++line) {
    const std::string expected = std::to_string(first + line - 1) + "\n";
    if (text.compare(at, expected.size(), expected) != 0) {
      return "line " + std::to_string(line) + ": \"" + text.substr(at, 20) + "\", expected " +
             expected;
    }
    at += expected.size();
  }
  if (at != text.size()) return std::to_string(text.size() - at) + " bytes after the last line";
  return "";
}

// The chaos of the restart-policy finding, through `procpool map --retries 5` with default
// options otherwise: a random worker SIGKILLed every 100-250 ms while lines stream in. Each
// death is charged to the task that ran (5 more attempts), never counted as a crash loop that
// ends the pool, so every line comes out, in order, and the run succeeds. The input goes on
// until the killer has made its kills, so that slower or faster machines still see them all
// during the run. Fails while a worker that served and then died inside min_uptime counts as a
// broken start: after five in a row the pool failed and map stopped with status 1.
TEST_F(MapTest, RetriesOutlastAWorkerKilledEvery100To250Ms) {
  using procpool::test::kTimingScale;
  const std::uint64_t min_lines = 100'000 / kTimingScale;
  const std::size_t min_kills = kTimingScale == 1 ? 10 : 5;
  // Where feeding stops even if the kills fall short (then the test fails on their count):
  // far enough for the kills' seconds at the rate of chunked lines (map packs fast lines).
  constexpr std::uint64_t kMaxLines = 60'000'000;
  constexpr std::uint64_t kChunk = 10'000;
  const std::uint32_t seed = std::random_device{}();
  SCOPED_TRACE("killer seed " + std::to_string(seed));

  std::optional<WorkerKiller> killer;
  std::uint64_t lines = 0;  // line L holds L - 1
  RunOptions options;
  options.deadline = 90s;
  options.on_started = [&](pid_t pid) { killer.emplace(pid, seed); };
  options.before_reap = [&] {
    if (killer) killer->stop();
  };
  options.more_input = [&] {
    std::string chunk;
    if (lines >= kMaxLines || (lines >= min_lines && killer && killer->kills() >= min_kills)) {
      return chunk;
    }
    for (std::uint64_t i = 0; i < kChunk; ++i) chunk += std::to_string(lines++) + "\n";
    return chunk;
  };
  const auto started = Clock::now();
  const Result run =
      run_procpool({"map", "--retries", "5", "--", worker("increment")}, "", options);
  const auto wall = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started);
  ASSERT_TRUE(killer.has_value());
  killer->stop();
  const std::size_t kills = killer->kills();
  std::printf("[ chaos    ] %llu lines, %zu workers SIGKILLed, %lld ms, status %d\n",
              static_cast<unsigned long long>(lines), kills, static_cast<long long>(wall.count()),
              run.exit_code);
  EXPECT_EXIT_CODE(run, 0);
  EXPECT_EQ(first_difference(run.out, 1, lines), "")
      << lines << " lines; stderr: " << run.err.substr(0, 4000);
  EXPECT_GE(kills, min_kills) << "too few workers killed during the run for it to show anything ("
                              << lines << " lines in " << wall.count() << " ms)";
}

}  // namespace
}  // namespace procpool::map_test
