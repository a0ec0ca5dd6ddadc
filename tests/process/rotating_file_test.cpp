// RotatingFile (supervisor/process/rotating_file.hpp): a rotation that fails (directory removed,
// made read-only, disk full) drops and counts what cannot be written, and the file comes back once
// the directory does; the retries are rate-bounded.

#include <fcntl.h>             // open
#include <linux/capability.h>  // __user_cap_header_struct, CAP_DAC_OVERRIDE
#include <sys/stat.h>          // chmod
#include <sys/syscall.h>       // SYS_capget, SYS_capset
#include <unistd.h>            // syscall, close

#include <cerrno>      // errno
#include <chrono>      // std::chrono
#include <filesystem>  // std::filesystem
#include <string>      // std::string
#include <thread>      // std::thread

#include "output_test_support.hpp"
#include "rotating_file.hpp"

namespace procpool::test {
namespace {

using detail::RotatingFile;
using namespace std::chrono_literals;

constexpr std::uint64_t kMax = 16;
const std::string kFull = "0123456789abcde\n";  // kMax bytes

TEST(RotatingFile, RemovedDirectoryDropsAndCountsThenTheFileComesBackWithIt) {
  OutputTempDir dir;
  const std::string logs = dir.file("logs");
  std::filesystem::create_directory(logs);
  RotatingFile file(logs + "/out.log", kMax, 2, 0ms);
  file.write(kFull);
  std::filesystem::remove_all(logs);
  file.write("lost\n");  // the rotation cannot open a new file
  EXPECT_EQ(file.dropped(), 5u);
  std::filesystem::create_directory(logs);
  file.write("back\n");
  EXPECT_EQ(contents(logs + "/out.log"), "back\n");
  EXPECT_EQ(file.dropped(), 5u);
}

TEST(RotatingFile, RetriesAreRateBounded) {
  OutputTempDir dir;
  const std::string logs = dir.file("logs");
  std::filesystem::create_directory(logs);
  RotatingFile file(logs + "/out.log", kMax, 2, std::chrono::hours(1));
  file.write(kFull);
  std::filesystem::remove_all(logs);
  file.write("lost\n");
  std::filesystem::create_directory(logs);
  file.write("too soon\n");  // within the hour: no new attempt
  EXPECT_EQ(file.dropped(), 5u + 9u);
  EXPECT_FALSE(std::filesystem::exists(logs + "/out.log"));
}

TEST(RotatingFile, WriteErrorsAreCounted) {
  RotatingFile file("/dev/full", 0, 0);  // every write: ENOSPC
  file.write("no space\n");
  file.write("still none\n");
  EXPECT_EQ(file.dropped(), 9u + 11u);
}

// Root passes every permission check by CAP_DAC_OVERRIDE; the thread that writes gives it (and
// CAP_DAC_READ_SEARCH) up, so that a directory made 0500 is read-only for it too. Capabilities
// are per thread under the raw syscall.
bool drop_permission_overrides_in_this_thread() {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
  if (::syscall(SYS_capget, &header, data) != 0) return false;
  for (const int cap : {CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH}) {
    data[cap / 32].effective &= ~(1u << (cap % 32));
  }
  return ::syscall(SYS_capset, &header, data) == 0;
}

TEST(RotatingFile, ReadOnlyDirectoryDropsAndCountsThenRotatesOnceWritable) {
  OutputTempDir dir;
  const std::string logs = dir.file("logs");
  std::filesystem::create_directory(logs);
  const std::string path = logs + "/out.log";
  bool enforced = false;
  std::uint64_t dropped_read_only = 0, dropped_after = 0;
  std::string while_read_only;
  std::thread writer([&] {
    if (!drop_permission_overrides_in_this_thread()) return;
    RotatingFile file(path, kMax, 2, 0ms);
    file.write(kFull);
    ::chmod(logs.c_str(), 0500);
    // Not access(2): for root it checks with the permitted capabilities, not the effective.
    const int probe = ::open((logs + "/probe").c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
    enforced = probe < 0 && errno == EACCES;
    if (probe >= 0) ::close(probe);
    file.write("lost\n");  // full: the rotation cannot move it away
    dropped_read_only = file.dropped();
    while_read_only = contents(path);
    ::chmod(logs.c_str(), 0700);
    file.write("back\n");
    dropped_after = file.dropped();
  });
  writer.join();
  ::chmod(logs.c_str(), 0700);
  if (!enforced) GTEST_SKIP() << "permissions are not enforced for this process";
  EXPECT_EQ(dropped_read_only, 5u);
  EXPECT_EQ(while_read_only, kFull);  // not written past max_bytes
  EXPECT_EQ(contents(path), "back\n");
  EXPECT_EQ(contents(path + ".1"), kFull);
  EXPECT_EQ(dropped_after, 5u);
}

}  // namespace
}  // namespace procpool::test
