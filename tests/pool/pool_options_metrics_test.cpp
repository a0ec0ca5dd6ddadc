// Tests of procpool::Pool's everyday behaviour with real worker processes (the example workers):
// option validation, a missing or non-executable program, a worker that exits before READY (and
// the process hygiene after each failed construction), and metrics.
//
// Every wait is bounded (pool_test_support.hpp): futures and callbacks with a bound, and a
// per-test watchdog for the rest (pool destructors included).

#include <gtest/gtest.h>
#include <sys/stat.h>  // chmod
#include <unistd.h>    // getpid, gettid

#include <boost/json.hpp>  // boost::json::parse (to_json() must be valid JSON)
#include <chrono>          // durations
#include <filesystem>      // std::filesystem
#include <fstream>         // std::ifstream, std::ofstream
#include <functional>      // std::function
#include <future>          // std::async
#include <optional>        // std::optional
#include <set>             // std::set
#include <string>          // std::string
#include <vector>          // std::vector

#include "pool_fixtures.hpp"
#include "pool_test_support.hpp"  // bounded waits, Callbacks, BlockedPool, /proc readings, watchdog
#include "procpool/error.hpp"
#include "procpool/pool.hpp"
#include "test_workers.hpp"

namespace procpool::test {
namespace {

using namespace std::chrono_literals;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

// The pool's message if constructing it throws procpool::Error; nullopt if it did not throw.
std::optional<std::string> construction_error(PoolOptions options) {
  return bounded("Pool construction",
                 [options = std::move(options)]() -> std::optional<std::string> {
                   try {
                     Pool pool(options);
                     return std::nullopt;
                   } catch (const TaskError& e) {
                     return std::string("unexpected TaskError: ") + e.what();
                   } catch (const Error& e) {
                     return std::string(e.what());
                   }
                 });
}

// --- Process hygiene after a failed construction (docs/design-rules.md §22) ---

// Snapshot of fds, /dev/shm and children; check() says what changed.
class Hygiene {
 public:
  Hygiene() : fds_(directory_entries("/proc/self/fd")), shm_(directory_entries("/dev/shm")) {}
  void check() const {
    // The directory iterator's own fd differs between listings; compare counts of the rest.
    std::set<std::string> fds = directory_entries("/proc/self/fd");
    EXPECT_LE(fds.size(), fds_.size()) << "file descriptors leaked by the failed pool";
    EXPECT_EQ(directory_entries("/dev/shm"), shm_) << "/dev/shm changed";
    EXPECT_EQ(child_processes(), std::vector<std::string>{}) << "children left behind";
  }

 private:
  std::set<std::string> fds_;
  std::set<std::string> shm_;
};

// ---------------------------------------------------------------------------------------------
// Options and start-up

TEST_F(PoolBasic, BadOptionsThrowErrorSayingWhatIsWrong) {
  const Hygiene hygiene;
  struct Case {
    const char* name;
    std::function<void(PoolOptions&)> change;
    std::vector<std::string> message_parts;
  };
  const std::vector<Case> cases = {
      {"min above max",
       [](PoolOptions& o) {
         o.min_workers = 3;
         o.max_workers = 2;
       },
       {"max_workers (2)", "min_workers (3)"}},
      {"pipeline_depth above the maximum",
       [](PoolOptions& o) { o.pipeline_depth = 65537; },
       {"pipeline_depth above 65536"}},
      {"empty executable", [](PoolOptions& o) { o.executable.clear(); }, {"executable", "empty"}},
      {"ring_capacity not a power of two",
       [](PoolOptions& o) { o.ring_capacity = 300000; },
       {"ring_capacity", "power of two"}},
      {"max_attempts 0", [](PoolOptions& o) { o.max_attempts = 0; }, {"max_attempts"}},
      {"max_rss above max_rss_hard",
       [](PoolOptions& o) {
         o.max_rss = 2 << 20;
         o.max_rss_hard = 1 << 20;
       },
       {"max_rss (2097152)", "max_rss_hard (1048576)"}},
      {"max_payload 0", [](PoolOptions& o) { o.max_payload = 0; }, {"max_payload"}},
  };
  for (const Case& c : cases) {
    PoolOptions options = small_pool("echo", 1);
    c.change(options);
    const auto message = construction_error(options);
    ASSERT_TRUE(message) << c.name << ": the pool accepted the options";
    for (const std::string& part : c.message_parts) {
      EXPECT_NE(message->find(part), std::string::npos) << c.name << ": " << *message;
    }
  }
  hygiene.check();
}

TEST_F(PoolBasic, MissingExecutableThrowsErrorNamingThePath) {
  const Hygiene hygiene;
  PoolOptions options = small_pool("echo", 1);
  options.executable = "/nonexistent/procpool-test/no-such-worker";
  const auto message = construction_error(options);
  ASSERT_TRUE(message);
  EXPECT_NE(message->find(options.executable), std::string::npos) << *message;
  EXPECT_NE(message->find("No such file"), std::string::npos) << *message;
  hygiene.check();
}

TEST_F(PoolBasic, NonExecutableFileThrowsErrorNamingThePath) {
  const std::filesystem::path file = std::filesystem::temp_directory_path() /
                                     ("procpool-not-executable-" + std::to_string(::getpid()));
  {
    std::ofstream out(file);
    out << "#!/bin/sh\nexit 0\n";
  }
  ASSERT_EQ(::chmod(file.c_str(), 0644), 0);
  const Hygiene hygiene;
  PoolOptions options = small_pool("echo", 1);
  options.executable = file.string();
  const auto message = construction_error(options);
  std::filesystem::remove(file);
  ASSERT_TRUE(message);
  EXPECT_NE(message->find(options.executable), std::string::npos) << *message;
  EXPECT_NE(message->find("ermission denied"), std::string::npos) << *message;
  hygiene.check();
}

TEST_F(PoolBasic, WorkerExitingBeforeReadyMakesConstructorThrowWithExitCodeAndStderr) {
  const Hygiene hygiene;
  PoolOptions options = small_pool("crashy", 1);
  options.args = {"--exit-before-ready", "3"};
  options.worker_stderr = OutputSink::none();  // the tail is kept for the report either way
  const auto started = Clock::now();
  const auto message = construction_error(options);
  ASSERT_TRUE(message);
  EXPECT_NE(message->find("exit code 3"), std::string::npos) << *message;
  EXPECT_NE(message->find("crashy: exiting before ready as asked"), std::string::npos) << *message;
  EXPECT_LT(Clock::now() - started, 10s) << "giving up took too long";
  hygiene.check();
}

// ---------------------------------------------------------------------------------------------
// Metrics

TEST_F(PoolBasic, MetricsCountWhatWasSubmittedPerPoolAndPerWorker) {
  Pool pool(small_pool("increment", 2));
  constexpr std::uint64_t kGood = 100, kBad = 7;
  std::vector<procpool::Future<std::string>> good, bad;
  for (std::uint64_t i = 0; i < kGood; ++i)
    good.push_back(pool.submit("increment", std::to_string(i)));
  for (std::uint64_t i = 0; i < kBad; ++i)
    bad.push_back(pool.submit("increment", "x" + std::to_string(i)));
  for (std::uint64_t i = 0; i < kGood; ++i) EXPECT_EQ(value_of(good[i]), std::to_string(i + 1));
  for (auto& f : bad) {
    const auto error = error_of(f);
    ASSERT_TRUE(error);
    EXPECT_EQ(error->kind(), TaskError::Kind::HandlerError);
  }

  const PoolMetrics m = pool.metrics();
  EXPECT_EQ(m.state, PoolMetrics::State::Running);
  EXPECT_EQ(m.completed, kGood);
  EXPECT_EQ(m.failed, kBad);
  EXPECT_EQ(m.queued, 0u);
  EXPECT_EQ(m.running, 0u);
  EXPECT_EQ(m.retried, 0u);
  EXPECT_EQ(m.restarts, 0u);
  EXPECT_EQ(m.run_time.count, kGood + kBad);
  EXPECT_EQ(m.queue_wait.count, kGood + kBad);
  EXPECT_GT(m.run_time.max_us, 0.0);
  EXPECT_LE(m.run_time.p50_us, m.run_time.p99_us);
  ASSERT_EQ(m.workers.size(), 2u);
  std::uint64_t done = 0, failed = 0;
  std::set<int> pids;
  for (const WorkerMetrics& w : m.workers) {
    EXPECT_GT(w.pid, 0);
    EXPECT_EQ(w.state, WorkerMetrics::State::Ready);
    EXPECT_GT(w.rss_bytes, 0u);
    EXPECT_EQ(w.inflight, 0u);
    EXPECT_EQ(w.restarts, 0u);
    EXPECT_GT(w.started_unix_s, 0.0);
    pids.insert(w.pid);
    done += w.tasks_done;
    failed += w.tasks_failed;
  }
  EXPECT_EQ(pids.size(), 2u);
  EXPECT_EQ(done, kGood);
  EXPECT_EQ(failed, kBad);

  const std::string json = m.to_json();
  boost::json::value parsed;
  ASSERT_NO_THROW(parsed = boost::json::parse(json)) << json;
  ASSERT_TRUE(parsed.is_object()) << json;
  const boost::json::object& root = parsed.as_object();
  EXPECT_EQ(root.at("completed").to_number<std::uint64_t>(), kGood);
  EXPECT_EQ(root.at("failed").to_number<std::uint64_t>(), kBad);
  EXPECT_EQ(root.at("state").as_string(), "running");
  ASSERT_TRUE(root.at("workers").is_array()) << json;
  const boost::json::array& workers = root.at("workers").as_array();
  ASSERT_EQ(workers.size(), 2u);
  for (std::size_t i = 0; i < workers.size(); ++i) {
    EXPECT_EQ(workers[i].as_object().at("pid").to_number<int>(), m.workers[i].pid);
    EXPECT_EQ(workers[i].as_object().at("state").as_string(), "ready");
    EXPECT_EQ(workers[i].as_object().at("tasks_done").to_number<std::uint64_t>(),
              m.workers[i].tasks_done);
  }
  EXPECT_TRUE(root.at("run_time").as_object().contains("p99_us")) << json;
}

// PoolMetrics::failed is documented as "resolved with an error (any kind)": tasks refused at
// submission (unknown handler, payload too large, queue full) are resolved with an error too, so
// completed + failed accounts for every task submitted.
TEST_F(PoolBasic, MetricsCountTasksRefusedAtSubmissionAsFailed) {
  PoolOptions options = small_pool("echo", 1);
  options.max_payload = 100;
  Pool pool(options);
  auto ok = pool.submit("echo", "fine");
  auto unknown = pool.submit("nope", "");
  auto too_large = pool.submit("echo", std::string(101, 'x'));
  EXPECT_EQ(value_of(ok), "fine");
  ASSERT_TRUE(error_of(unknown));
  ASSERT_TRUE(error_of(too_large));
  const PoolMetrics m = pool.metrics();
  EXPECT_EQ(m.completed, 1u);
  EXPECT_EQ(m.failed, 2u) << "completed + failed should account for all 3 tasks submitted";
}

}  // namespace
}  // namespace procpool::test
