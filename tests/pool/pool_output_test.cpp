// The workers' stdout and stderr (PoolOptions::worker_stdout, worker_stderr): captured by the
// supervisor thread and handed to the same sinks as a Supervisor program's, outside the pool's
// lock.
#include <gtest/gtest.h>
#include <sys/stat.h>  // stat (the log file's mode)

#include <chrono>              // durations
#include <condition_variable>  // line arrivals
#include <filesystem>          // std::filesystem::path
#include <fstream>             // the log file
#include <mutex>               // the recorded lines
#include <optional>            // std::optional
#include <sstream>             // std::stringstream
#include <stdexcept>           // std::runtime_error
#include <string>              // std::string
#include <vector>              // std::vector

#include "pool_test_support.hpp"  // Watchdog, value_of, poll_until, kBound
#include "procpool/pool.hpp"
#include "temp_dir.hpp"      // TempDir
#include "test_workers.hpp"  // small_pool

namespace procpool::test {
namespace {

using namespace std::chrono_literals;

// Lines a sink received, with the instance names, and a bounded wait for one.
class Lines {
 public:
  std::function<void(std::string_view, std::string_view)> sink() {
    return [this](std::string_view instance, std::string_view line) {
      std::lock_guard lock(mutex_);
      lines_.emplace_back(std::string(instance) + " " + std::string(line));
      arrived_.notify_all();
    };
  }
  // True once `entry` ("worker:0 text") has arrived.
  bool wait_for(const std::string& entry) {
    std::unique_lock lock(mutex_);
    return arrived_.wait_for(lock, kBound, [&] {
      for (const std::string& line : lines_) {
        if (line == entry) return true;
      }
      return false;
    });
  }
  std::string all() {
    std::lock_guard lock(mutex_);
    std::string out;
    for (const std::string& line : lines_) out += line + "\n";
    return out;
  }

 private:
  std::mutex mutex_;
  std::condition_variable arrived_;
  std::vector<std::string> lines_;
};

std::string file_text(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST(PoolOutput, EachStreamReachesItsLineSinkWithTheWorkersName) {
  const Watchdog watchdog(kBound * 2);
  Lines out, err;
  PoolOptions options = small_pool("crashy", 2);
  options.worker_stdout = OutputSink{};
  options.worker_stdout.on_line = out.sink();
  options.worker_stderr = OutputSink{};
  options.worker_stderr.on_line = err.sink();
  Pool pool(options);
  auto printed = pool.submit("stdout", "to stdout\nsecond line\n");
  auto warned = pool.submit("stderr", "to stderr\n");
  EXPECT_EQ(value_of(printed), "ok");
  EXPECT_EQ(value_of(warned), "ok");
  // Which worker ran which task is the dispatcher's choice: either slot's name will do.
  const auto arrived = [](Lines& lines, const std::string& text) {
    return poll_until([&] {
      const std::string all = lines.all();
      return all.find("worker:0 " + text + "\n") != std::string::npos ||
             all.find("worker:1 " + text + "\n") != std::string::npos;
    });
  };
  EXPECT_TRUE(arrived(out, "to stdout")) << out.all();
  EXPECT_TRUE(arrived(out, "second line")) << out.all();
  EXPECT_TRUE(arrived(err, "to stderr")) << err.all();
  EXPECT_EQ(out.all().find("to stderr"), std::string::npos) << "streams kept apart";
  EXPECT_EQ(err.all().find("to stdout"), std::string::npos) << "streams kept apart";
}

// A sink may call back into the pool: it runs on the supervisor thread with the pool's lock
// released. Were the lock held, metrics() here would deadlock and the wait below would fail.
TEST(PoolOutput, SinksRunOutsideThePoolsLock) {
  const Watchdog watchdog(kBound * 2);
  std::mutex mutex;
  std::condition_variable seen;
  Pool* pool_ptr = nullptr;
  std::size_t workers_seen = 0;
  bool called = false;
  PoolOptions options = small_pool("crashy", 1);
  options.worker_stderr = OutputSink{};
  options.worker_stderr.on_line = [&](std::string_view, std::string_view line) {
    if (line != "call back") return;
    Pool* pool = nullptr;
    {
      std::lock_guard lock(mutex);
      pool = pool_ptr;
    }
    const std::size_t workers = pool != nullptr ? pool->metrics().workers.size() : 0;
    std::lock_guard lock(mutex);
    workers_seen = workers;
    called = true;
    seen.notify_all();
  };
  Pool pool(options);
  {
    std::lock_guard lock(mutex);
    pool_ptr = &pool;
  }
  auto done = pool.submit("stderr", "call back\n");
  EXPECT_EQ(value_of(done), "ok");
  std::unique_lock lock(mutex);
  ASSERT_TRUE(seen.wait_for(lock, kBound, [&] { return called; }));
  EXPECT_EQ(workers_seen, 1u);
}

// What a worker wrote without a final newline is delivered as a line once it is gone, and its
// last stderr lines are in the crash report.
TEST(PoolOutput, UnfinishedLastLineIsDeliveredWhenTheWorkerExits) {
  const Watchdog watchdog(kBound * 2);
  Lines out, err;
  PoolOptions options = small_pool("crashy", 1);
  options.worker_stdout = OutputSink{};
  options.worker_stdout.on_line = out.sink();
  options.worker_stderr = OutputSink{};
  options.worker_stderr.on_line = err.sink();
  Pool pool(options);
  auto printed = pool.submit("stdout", "no newline");
  EXPECT_EQ(value_of(printed), "ok");
  auto warned = pool.submit("stderr", "last words\n");
  EXPECT_EQ(value_of(warned), "ok");
  TaskOptions once;
  once.max_attempts = 1;
  auto exited = pool.submit("segfault", "", once);
  const std::optional<TaskError> error = error_of(exited);
  ASSERT_TRUE(error);
  const std::string report = error->what();
  EXPECT_NE(report.find("last words"), std::string::npos) << report;
  EXPECT_TRUE(out.wait_for("worker:0 no newline")) << out.all();
  EXPECT_TRUE(err.wait_for("worker:0 last words")) << err.all();
}

// A callback that throws is counted, and the lines after it still arrive.
TEST(PoolOutput, ThrowingLineSinkIsCountedAndOutputGoesOn) {
  const Watchdog watchdog(kBound * 2);
  Lines lines;
  auto record = lines.sink();
  PoolOptions options = small_pool("crashy", 1);
  options.worker_stderr = OutputSink{};
  options.worker_stderr.on_line = [&](std::string_view instance, std::string_view line) {
    if (line == "throw") throw std::runtime_error("sink bug");
    record(instance, line);
  };
  Pool pool(options);
  auto first = pool.submit("stderr", "throw\nafter\n");
  EXPECT_EQ(value_of(first), "ok");
  EXPECT_TRUE(lines.wait_for("worker:0 after")) << lines.all();
  EXPECT_TRUE(poll_until([&] { return pool.metrics().callback_errors == 1; }))
      << pool.metrics().callback_errors;
}

// Both streams into one rotating file: one writer, created owner-only.
TEST(PoolOutput, FileSinkTakesBothStreamsOwnerOnly) {
  const Watchdog watchdog(kBound * 2);
  const TempDir dir("procpool-output");
  const std::filesystem::path log = dir.path() / "workers.log";
  PoolOptions options = small_pool("crashy", 1);
  options.worker_stdout = OutputSink{};
  options.worker_stdout.file = log.string();
  options.worker_stderr = OutputSink{};
  options.worker_stderr.file = log.string();
  {
    Pool pool(options);
    auto printed = pool.submit("stdout", "out line\n");
    auto warned = pool.submit("stderr", "err line\n");
    EXPECT_EQ(value_of(printed), "ok");
    EXPECT_EQ(value_of(warned), "ok");
    EXPECT_TRUE(poll_until([&] {
      const std::string text = file_text(log);
      return text.find("out line\n") != std::string::npos &&
             text.find("err line\n") != std::string::npos;
    })) << file_text(log);
  }
  struct stat st {};
  ASSERT_EQ(::stat(log.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST(PoolOutput, UnusableOutputFdIsAClearConstructionError) {
  PoolOptions options = small_pool("crashy", 1);
  options.worker_stderr = OutputSink::to_fd(987654);  // not open
  try {
    Pool pool(options);
    FAIL() << "the pool started with a closed output fd";
  } catch (const SystemError& e) {
    EXPECT_NE(std::string(e.what()).find("worker output"), std::string::npos) << e.what();
    EXPECT_EQ(e.code(), EBADF);
  }
}

}  // namespace
}  // namespace procpool::test
