#include "chaos.hpp"

#include <dirent.h>       // opendir, readdir
#include <signal.h>       // SIGKILL
#include <sys/syscall.h>  // SYS_pidfd_open, SYS_pidfd_send_signal
#include <unistd.h>       // getpid, sysconf, readlink, close

#include <algorithm>           // std::min
#include <atomic>              // std::atomic
#include <condition_variable>  // std::condition_variable
#include <cstdio>              // std::snprintf
#include <fstream>             // std::ifstream
#include <memory>              // std::unique_ptr
#include <mutex>               // std::mutex
#include <optional>            // std::optional
#include <random>              // std::mt19937_64
#include <set>                 // std::set
#include <sstream>             // std::ostringstream
#include <thread>              // std::thread
#include <utility>             // std::pair

#include "procpool/error.hpp"
#include "procpool/pool.hpp"

namespace procpool::chaos {
namespace {

using Clock = std::chrono::steady_clock;

std::uint64_t rss_of_self() {
  std::ifstream statm("/proc/self/statm");
  std::uint64_t size = 0, resident = 0;
  statm >> size >> resident;
  return resident * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
}

std::set<std::string> directory(const std::string& path) {
  std::set<std::string> names;
  if (DIR* dir = ::opendir(path.c_str())) {
    while (const dirent* entry = ::readdir(dir)) {
      const std::string name = entry->d_name;
      if (name != "." && name != "..") names.insert(name);
    }
    ::closedir(dir);
  }
  return names;
}

// State and parent of a process, from /proc/<pid>/stat ("pid (comm) S ppid ..."); false if gone.
bool state_and_parent(int pid, char& state, int& ppid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  const auto close_paren = text.rfind(')');
  if (close_paren == std::string::npos || close_paren + 4 > text.size()) return false;
  std::istringstream rest(text.substr(close_paren + 2));
  rest >> state >> ppid;
  return static_cast<bool>(rest);
}

// Processes whose parent is this process: "pid (state S)".
std::vector<std::string> children_of_self() {
  std::vector<std::string> children;
  const int self = ::getpid();
  for (const std::string& name : directory("/proc")) {
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    char state = '?';
    int ppid = 0;
    if (state_and_parent(std::stoi(name), state, ppid) && ppid == self) {
      children.push_back(name + " (state " + state + ")");
    }
  }
  return children;
}

// A worker's fds beyond 0, 1, 2 and the two the pool passed it (named in its environment).
std::vector<std::string> unexpected_fds(int pid) {
  const std::string proc = "/proc/" + std::to_string(pid);
  std::ifstream environ(proc + "/environ");
  std::string entry;
  std::set<std::string> expected = {"0", "1", "2"};
  while (std::getline(environ, entry, '\0')) {
    for (const char* name : {"PROCPOOL_SEGMENT_FD=", "PROCPOOL_DOORBELL_FD="}) {
      if (entry.rfind(name, 0) == 0) expected.insert(entry.substr(std::string(name).size()));
    }
  }
  std::vector<std::string> extra;
  if (expected.size() != 5) return extra;  // exiting, or not readable: nothing to judge
  for (const std::string& fd : directory(proc + "/fd")) {
    if (expected.count(fd) != 0) continue;
    char target[256] = {};
    const ssize_t n = ::readlink((proc + "/fd/" + fd).c_str(), target, sizeof target - 1);
    extra.push_back("fd " + fd + " -> " +
                    (n > 0 ? std::string(target, static_cast<std::size_t>(n)) : std::string("?")));
  }
  return extra;
}

// SIGKILLs `pid` if it is still our child: through a pidfd, after checking its parent, so a
// recycled pid is never signalled.
bool kill_if_our_child(int pid) {
  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0) return false;
  char state = '?';
  int ppid = 0;
  const bool ours = state_and_parent(pid, state, ppid) && ppid == ::getpid() && state != 'Z';
  const bool sent = ours && ::syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, nullptr, 0) == 0;
  ::close(pidfd);
  return sent;
}

std::string mib(std::uint64_t bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f", static_cast<double>(bytes) / (1024.0 * 1024.0));
  return text;
}

// Resolution counts per task, in chunks that never move (callbacks read them concurrently).
class Counts {
 public:
  Counts() { chunks_.reserve(1 << 16); }
  std::atomic<std::uint8_t>& operator[](std::uint64_t index) {
    return chunks_[index >> kShift][index & kMask];
  }
  std::uint64_t bytes() const { return chunks_.size() * kChunk; }
  void ensure(std::uint64_t index) {  // submitting thread only, before the task exists
    while ((index >> kShift) >= chunks_.size()) {
      chunks_.push_back(std::make_unique<std::atomic<std::uint8_t>[]>(kChunk));
    }
  }

 private:
  static constexpr unsigned kShift = 20;
  static constexpr std::uint64_t kChunk = std::uint64_t{1} << kShift;
  static constexpr std::uint64_t kMask = kChunk - 1;
  std::vector<std::unique_ptr<std::atomic<std::uint8_t>[]>> chunks_;
};

}  // namespace

std::string ChaosReport::text() const {
  std::ostringstream out;
  out << "tasks " << submitted << "\ncompleted " << completed << "\nfailed " << failed << "\nwrong "
      << wrong << "\nduplicated " << duplicated << "\nlost " << lost << "\nkills " << kills
      << "\nrestarts " << restarts << "\nretried " << retried << "\nsupervisor_rss_start_mib "
      << mib(supervisor_rss_start) << "\nsupervisor_rss_end_mib " << mib(supervisor_rss_end)
      << "\nchecker_mib " << mib(checker_bytes) << " (1 byte per task, part of the supervisor RSS)"
      << "\nelapsed_s " << elapsed_s << "\nwall_s " << wall_s << "\nserved_after "
      << (served_after ? "yes" : "no") << "\nanomalies " << anomalies.size() << "\n";
  for (const std::string& anomaly : anomalies) out << "anomaly: " << anomaly << "\n";
  return out.str();
}

ChaosReport run_chaos(const ChaosConfig& config) {
  ChaosReport report;
  const auto started = Clock::now();
  const auto deadline = started + config.deadline;
  const std::set<std::string> shm_before = directory("/dev/shm");
  const std::vector<std::string> children_before = children_of_self();

  PoolOptions options;
  options.executable = config.worker;
  options.min_workers = options.max_workers = config.workers;
  options.max_attempts = config.max_attempts;
  options.worker_data = std::to_string(config.spin_us);  // the workload, not a pool policy
  {
    Pool pool(options);

    std::mutex mutex;
    std::condition_variable changed;
    std::uint64_t outstanding = 0;
    std::atomic<std::uint64_t> completed{0}, failed{0}, wrong{0}, duplicated{0};
    std::vector<std::string> errors;  // the first few, under mutex
    Counts counts;

    auto submit = [&](std::uint64_t index) {
      counts.ensure(index);
      pool.submit("spin_increment", std::to_string(index), {}, [&, index](const TaskOutcome& o) {
        const bool first = counts[index].fetch_add(1, std::memory_order_relaxed) == 0;
        if (!first) {
          duplicated.fetch_add(1, std::memory_order_relaxed);
        } else if (!o.ok()) {
          failed.fetch_add(1, std::memory_order_relaxed);
          std::lock_guard lock(mutex);
          if (errors.size() < 5) {
            errors.push_back("task " + std::to_string(index) + " failed: " + o.error()->what());
          }
        } else if (o.value() != std::to_string(index + 1)) {
          wrong.fetch_add(1, std::memory_order_relaxed);
        } else {
          completed.fetch_add(1, std::memory_order_relaxed);
        }
        std::lock_guard lock(mutex);
        if (first) --outstanding;
        changed.notify_all();
      });
    };
    auto wait_below = [&](std::uint64_t limit) {
      std::unique_lock lock(mutex);
      return changed.wait_until(lock, deadline, [&] { return outstanding < limit; });
    };

    // Warm-up, so the RSS baseline includes the pool's steady-state buffers.
    const std::uint64_t warm = 1000;
    for (std::uint64_t i = 0; i < warm; ++i) {
      if (!wait_below(config.window)) break;
      {
        std::lock_guard lock(mutex);
        ++outstanding;
      }
      submit(i);
    }
    wait_below(1);
    report.supervisor_rss_start = rss_of_self();

    // The killer.
    std::atomic<bool> stop{false};
    std::atomic<std::uint64_t> kills{0};
    std::thread killer([&] {
      if (!config.kill) return;
      std::mt19937_64 rng(config.seed);
      std::uniform_int_distribution<long> pause(config.kill_min.count(), config.kill_max.count());
      std::mutex sleep_mutex;
      std::condition_variable woken;
      // Each incarnation is killed once, so that `kills` counts deaths: a killed worker is
      // listed as ready until the pool reaps it, and a SIGKILLed process is not a zombie yet
      // for tens of ms (several times longer under ThreadSanitizer, whose shadow mappings take
      // that long to tear down; longer still on a loaded machine), so it could be hit again.
      std::set<std::pair<unsigned, std::uint64_t>> killed;  // (slot, incarnation)
      while (!stop.load()) {
        {
          std::unique_lock lock(sleep_mutex);  // the pause between kills is the workload
          woken.wait_for(lock, std::chrono::milliseconds(pause(rng)), [&] { return stop.load(); });
        }
        if (stop.load()) break;
        std::vector<WorkerMetrics> targets;
        for (const WorkerMetrics& w : pool.metrics().workers) {
          if (w.pid > 0 && w.state == WorkerMetrics::State::Ready &&
              killed.count({w.slot, w.incarnation}) == 0) {
            targets.push_back(w);
          }
        }
        if (targets.empty()) continue;
        const WorkerMetrics& target = targets[rng() % targets.size()];
        if (kill_if_our_child(target.pid)) {
          killed.insert({target.slot, target.incarnation});
          kills.fetch_add(1);
        }
      }
    });

    std::uint64_t next = warm;
    const auto stream_started = Clock::now();
    auto more = [&] {
      if (Clock::now() >= deadline) return false;
      if (config.tasks != 0) return next < warm + config.tasks;
      return Clock::now() < started + config.duration;
    };
    while (more()) {
      if (!wait_below(config.window)) break;
      {
        std::lock_guard lock(mutex);
        ++outstanding;
      }
      submit(next++);
    }
    const bool drained = wait_below(1);
    report.wall_s = std::chrono::duration<double>(Clock::now() - stream_started).count();
    stop.store(true);
    killer.join();

    report.submitted = next;
    report.completed = completed.load();
    report.failed = failed.load();
    report.wrong = wrong.load();
    report.duplicated = duplicated.load();
    {
      std::lock_guard lock(mutex);
      report.lost = outstanding;
      for (const std::string& error : errors) report.anomalies.push_back(error);
    }
    if (!drained) report.anomalies.push_back("tasks still unresolved at the deadline");
    report.kills = kills.load();

    // After the last kill the pool still serves, and its workers hold only their own fds.
    {
      std::mutex m;
      std::condition_variable cv;
      std::optional<bool> ok;
      pool.submit("spin_increment", "41", {}, [&](const TaskOutcome& o) {
        std::lock_guard lock(m);
        ok = o.ok() && o.value() == "42";
        cv.notify_all();
      });
      std::unique_lock lock(m);
      cv.wait_until(lock, std::min(deadline, Clock::now() + std::chrono::seconds(30)),
                    [&] { return ok.has_value(); });
      report.served_after = ok.value_or(false);
      if (!ok.has_value()) {
        lock.unlock();
        report.anomalies.push_back("the pool did not answer a task after the last kill");
        pool.wait_idle();  // the callback refers to this scope's locals
      }
    }
    // The worker killed last may not be reaped yet (the task above can run on another one):
    // give the pool a bounded time to count its restart before reading the restarts.
    const auto settle = std::min(deadline, Clock::now() + std::chrono::seconds(10));
    while (pool.metrics().restarts < report.kills && Clock::now() < settle) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));  // the poll interval
    }
    const PoolMetrics metrics = pool.metrics();
    report.restarts = metrics.restarts;
    report.retried = metrics.retried;
    for (const WorkerMetrics& w : metrics.workers) {
      if (w.pid <= 0) continue;
      for (const std::string& fd : unexpected_fds(w.pid)) {
        report.anomalies.push_back("worker pid " + std::to_string(w.pid) + " holds " + fd);
      }
    }
    report.supervisor_rss_end = rss_of_self();
    report.checker_bytes = counts.bytes();
  }  // the pool shuts down and reaps its workers here

  report.elapsed_s = std::chrono::duration<double>(Clock::now() - started).count();
  const std::set<std::string> before(children_before.begin(), children_before.end());
  for (const std::string& child : children_of_self()) {
    if (before.count(child) == 0) {
      report.anomalies.push_back("child process left after the pool: " + child);
    }
  }
  for (const std::string& name : directory("/dev/shm")) {
    if (shm_before.count(name) == 0) report.anomalies.push_back("/dev/shm/" + name + " appeared");
  }
  return report;
}

std::string ChaosComparison::text() const {
  std::ostringstream out;
  out << chaos.text() << "wall_without_kills_s " << baseline.wall_s << "\nratio " << ratio()
      << "\nbaseline_clean " << (baseline.clean() ? "yes" : "no") << "\n";
  for (const std::string& anomaly : baseline.anomalies)
    out << "baseline anomaly: " << anomaly << "\n";
  return out.str();
}

ChaosComparison run_chaos_and_baseline(const ChaosConfig& config) {
  ChaosComparison comparison;
  ChaosConfig quiet = config;
  quiet.kill = false;
  comparison.baseline = run_chaos(quiet);
  ChaosConfig chaos = config;
  chaos.kill = true;
  comparison.chaos = run_chaos(chaos);
  return comparison;
}

}  // namespace procpool::chaos
