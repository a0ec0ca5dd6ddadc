#pragma once
// What the segment tests share: a small distinct-sized config, fd and mapping counters, copies of a
// segment's bytes in fresh memfds, and the layout checks.

#include <gtest/gtest.h>

#include <fcntl.h>     // fcntl, open, F_GET_SEALS
#include <poll.h>      // poll
#include <signal.h>    // SIGKILL
#include <sys/mman.h>  // memfd_create
#include <sys/stat.h>  // fstat
#include <sys/wait.h>  // WIFEXITED, WIFSIGNALED
#include <unistd.h>    // close, dup, ftruncate, pipe2, pread, pwrite, read, write

#include <algorithm>    // std::sort
#include <cerrno>       // errno
#include <chrono>       // std::chrono literals
#include <cstdint>      // fixed-width integers
#include <cstdio>       // std::fprintf (the child's diagnostics)
#include <cstring>      // std::memcpy, std::strerror
#include <filesystem>   // std::filesystem::directory_iterator
#include <fstream>      // std::ifstream (/proc/self/maps)
#include <iterator>     // std::size
#include <limits>       // std::numeric_limits
#include <optional>     // std::optional
#include <random>       // std::mt19937_64
#include <set>          // std::set
#include <string>       // std::string
#include <string_view>  // std::string_view
#include <utility>      // std::exchange
#include <vector>       // std::vector

#include "child_process.hpp"
#include "procpool/error.hpp"
#include "procpool/segment.hpp"
#include "procpool/unique_fd.hpp"

namespace procpool::segment_test {

using namespace std::chrono_literals;
using test::ChildProcess;

// Every wait on another process is bounded by this.
inline constexpr auto kChildBound = 10s;

// The name memfd_create gives Segment::create's memory in /proc/self/maps.
inline constexpr const char* kSegmentMapping = "memfd:procpool-segment";
// Names of the memfds the tests fill by hand, so their mappings can be told apart.
inline constexpr const char* kCopyName = "procpool-test-copy";
inline constexpr const char* kCopyMapping = "memfd:procpool-test-copy";

// A small segment with distinct sizes for everything, so a swapped offset or capacity shows.
inline SegmentConfig small_config() {
  SegmentConfig config;
  config.to_worker_capacity = 4096;
  config.to_supervisor_capacity = 8192;
  config.heartbeat_interval_ms = 50;
  return config;
}

struct Pipe {
  UniqueFd read;
  UniqueFd write;
};

inline Pipe make_pipe() {
  int fds[2] = {-1, -1};
  if (::pipe2(fds, O_CLOEXEC) != 0) return {};
  return {UniqueFd(fds[0]), UniqueFd(fds[1])};
}

// True if `fd` is not open (the number is free again).
inline bool is_closed(int fd) {
  errno = 0;
  return ::fcntl(fd, F_GETFD) == -1 && errno == EBADF;
}

// Entries in /proc/self/fd. The directory's own fd is counted every time, so two counts compare.
inline std::size_t count_open_fds() {
  std::size_t count = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    ++count;
  }
  return count;
}

// Mappings in /proc/self/maps whose path contains `name`.
inline std::size_t count_mappings(const std::string& name) {
  std::ifstream maps("/proc/self/maps");
  std::size_t count = 0;
  for (std::string line; std::getline(maps, line);) {
    if (line.find(name) != std::string::npos) ++count;
  }
  return count;
}

inline std::set<std::string> list_dev_shm() {
  std::set<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator("/dev/shm")) {
    names.insert(entry.path().filename().string());
  }
  return names;
}

// A fresh memfd (named kCopyName) holding exactly `contents`. Returns -1 on failure.
inline int memfd_with(const std::vector<std::byte>& contents) {
  UniqueFd fd(::memfd_create(kCopyName, MFD_CLOEXEC));
  if (fd.get() < 0) return -1;
  if (::ftruncate(fd.get(), static_cast<off_t>(contents.size())) != 0) return -1;
  std::size_t done = 0;
  while (done < contents.size()) {
    const ssize_t n = ::pwrite(fd.get(), contents.data() + done, contents.size() - done,
                               static_cast<off_t>(done));
    if (n <= 0) return -1;
    done += static_cast<std::size_t>(n);
  }
  return fd.release();
}

// Every byte of a segment, read through its fd (not its mapping), as a worker would see them.
inline std::vector<std::byte> bytes_of(const Segment& segment) {
  std::vector<std::byte> bytes(segment.size());
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n =
        ::pread(segment.fd(), bytes.data() + done, bytes.size() - done, static_cast<off_t>(done));
    if (n <= 0) return {};
    done += static_cast<std::size_t>(n);
  }
  return bytes;
}

inline SegmentHeader header_in(const std::vector<std::byte>& bytes) {
  SegmentHeader header{};
  std::memcpy(&header, bytes.data(), sizeof header);
  return header;
}

inline void set_header_in(std::vector<std::byte>& bytes, const SegmentHeader& header) {
  std::memcpy(bytes.data(), &header, sizeof header);
}

inline bool same_layout(const SegmentHeader& a, const SegmentHeader& b) {
  // SegmentHeader has no padding (static_asserts in segment_layout.hpp), so bytes compare.
  return std::memcmp(&a, &b, sizeof a) == 0;
}

// The message of the procpool::Error `attempt` throws, or nothing if it returns normally. Any
// other exception escapes and fails the test.
template <class Attempt>
std::optional<std::string> error_from(Attempt&& attempt) {
  try {
    attempt();
  } catch (const Error& e) {
    return std::string(e.what());
  }
  return std::nullopt;
}

inline bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

inline std::span<const std::byte> bytes_of(std::string_view s) {
  return std::as_bytes(std::span<const char>(s.data(), s.size()));
}
inline std::string string_of(std::span<const std::byte> record) {
  return std::string(reinterpret_cast<const char*>(record.data()), record.size());
}

// One part of a layout, for the alignment and overlap checks.
struct Part {
  const char* name;
  std::uint64_t offset;
  std::uint64_t size;
};

inline std::vector<Part> parts_of(const SegmentHeader& h) {
  return {
      {"header", 0, sizeof(SegmentHeader)},
      {"control", h.control_offset, sizeof(WorkerControl)},
      {"to_worker ring", h.to_worker_ring_offset, sizeof(RingData)},
      {"to_supervisor ring", h.to_supervisor_ring_offset, sizeof(RingData)},
      {"to_worker bytes", h.to_worker_bytes_offset, h.to_worker_capacity},
      {"to_supervisor bytes", h.to_supervisor_bytes_offset, h.to_supervisor_capacity},
  };
}

// Asserts that every part of `h` is cache-line aligned, inside total_size and disjoint.
inline void expect_parts_aligned_and_disjoint(const SegmentHeader& h) {
  std::vector<Part> parts = parts_of(h);
  std::sort(parts.begin(), parts.end(),
            [](const Part& a, const Part& b) { return a.offset < b.offset; });
  for (std::size_t i = 0; i < parts.size(); ++i) {
    const Part& part = parts[i];
    EXPECT_EQ(part.offset % kCacheLineSize, 0U) << part.name << " at " << part.offset;
    EXPECT_LE(part.offset + part.size, h.total_size) << part.name << " past the end";
    if (i + 1 < parts.size()) {
      EXPECT_LE(part.offset + part.size, parts[i + 1].offset)
          << part.name << " overlaps " << parts[i + 1].name;
    }
  }
}

}  // namespace procpool::segment_test
