// The shared-memory segment: how it is created (owner-only, close-on-exec, sealed memfd), where
// its parts are, attaching from a second process, refusing anything that is not a segment, and
// leaving nothing behind (no /dev/shm name, no fd, no mapping) however its owner ends.

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

namespace procpool {
namespace {

using test::ChildProcess;
using namespace std::chrono_literals;

// Every wait on another process is bounded by this.
constexpr auto kChildBound = 10s;

// The name memfd_create gives Segment::create's memory in /proc/self/maps.
constexpr const char* kSegmentMapping = "memfd:procpool-segment";
// Names of the memfds the tests fill by hand, so their mappings can be told apart.
constexpr const char* kCopyName = "procpool-test-copy";
constexpr const char* kCopyMapping = "memfd:procpool-test-copy";

// A small segment with distinct sizes for everything, so a swapped offset or capacity shows.
SegmentConfig small_config() {
  SegmentConfig config;
  config.to_worker_capacity = 4096;
  config.to_supervisor_capacity = 8192;
  config.arena_slot_size = 192;  // a multiple of 64 that is not a power of two
  config.arena_slot_count = 3;
  config.heartbeat_interval_ms = 50;
  return config;
}

using procpool::UniqueFd;

struct Pipe {
  UniqueFd read;
  UniqueFd write;
};

Pipe make_pipe() {
  int fds[2] = {-1, -1};
  if (::pipe2(fds, O_CLOEXEC) != 0) return {};
  return {UniqueFd(fds[0]), UniqueFd(fds[1])};
}

// True if `fd` is not open (the number is free again).
bool is_closed(int fd) {
  errno = 0;
  return ::fcntl(fd, F_GETFD) == -1 && errno == EBADF;
}

// Entries in /proc/self/fd. The directory's own fd is counted every time, so two counts compare.
std::size_t count_open_fds() {
  std::size_t count = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    ++count;
  }
  return count;
}

// Mappings in /proc/self/maps whose path contains `name`.
std::size_t count_mappings(const std::string& name) {
  std::ifstream maps("/proc/self/maps");
  std::size_t count = 0;
  for (std::string line; std::getline(maps, line);) {
    if (line.find(name) != std::string::npos) ++count;
  }
  return count;
}

std::set<std::string> list_dev_shm() {
  std::set<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator("/dev/shm")) {
    names.insert(entry.path().filename().string());
  }
  return names;
}

// A fresh memfd (named kCopyName) holding exactly `contents`. Returns -1 on failure.
int memfd_with(const std::vector<std::byte>& contents) {
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
std::vector<std::byte> bytes_of(const Segment& segment) {
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

SegmentHeader header_in(const std::vector<std::byte>& bytes) {
  SegmentHeader header{};
  std::memcpy(&header, bytes.data(), sizeof header);
  return header;
}

void set_header_in(std::vector<std::byte>& bytes, const SegmentHeader& header) {
  std::memcpy(bytes.data(), &header, sizeof header);
}

bool same_layout(const SegmentHeader& a, const SegmentHeader& b) {
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

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

std::span<const std::byte> bytes_of(std::string_view s) {
  return std::as_bytes(std::span<const char>(s.data(), s.size()));
}
std::string string_of(std::span<const std::byte> record) {
  return std::string(reinterpret_cast<const char*>(record.data()), record.size());
}

// One part of a layout, for the alignment and overlap checks.
struct Part {
  const char* name;
  std::uint64_t offset;
  std::uint64_t size;
};

std::vector<Part> parts_of(const SegmentHeader& h) {
  return {
      {"header", 0, sizeof(SegmentHeader)},
      {"control", h.control_offset, sizeof(WorkerControl)},
      {"to_worker ring", h.to_worker_ring_offset, sizeof(RingData)},
      {"to_supervisor ring", h.to_supervisor_ring_offset, sizeof(RingData)},
      {"to_worker bytes", h.to_worker_bytes_offset, h.to_worker_capacity},
      {"to_supervisor bytes", h.to_supervisor_bytes_offset, h.to_supervisor_capacity},
      {"arena", h.arena_offset, h.arena_slot_size * h.arena_slot_count},
  };
}

// Asserts that every part of `h` is cache-line aligned, inside total_size and disjoint.
void expect_parts_aligned_and_disjoint(const SegmentHeader& h) {
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

// ---------------------------------------------------------------------------------------------
// Creation: who may touch the memory, and that nobody can resize it.

TEST(Segment, CreatedMemfdIsOwnerOnlyAndCloseOnExec) {
  Segment segment = Segment::create(small_config(), 1);
  struct stat st {};
  ASSERT_EQ(::fstat(segment.fd(), &st), 0) << std::strerror(errno);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600U) << std::oct << (st.st_mode & 0777);
  EXPECT_EQ(static_cast<std::uint64_t>(st.st_size), segment.size());
  // Close-on-exec: the fd reaches only the worker it is deliberately handed to
  // (docs/design-rules.md §13).
  const int fd_flags = ::fcntl(segment.fd(), F_GETFD);
  ASSERT_NE(fd_flags, -1) << std::strerror(errno);
  EXPECT_NE(fd_flags & FD_CLOEXEC, 0);
}

// A worker holding the fd must not be able to shrink the memory under the supervisor's mapping
// (SIGBUS on its next access, docs/design-rules.md §15), nor grow it, nor lift the seals.
TEST(Segment, CreatedMemfdIsSealedAgainstResizeAndFurtherSeals) {
  Segment segment = Segment::create(small_config(), 1);
  const auto size = static_cast<off_t>(segment.size());

  const int seals = ::fcntl(segment.fd(), F_GET_SEALS);
  ASSERT_NE(seals, -1) << std::strerror(errno);
  constexpr int kRequired = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL;
  EXPECT_EQ(seals & kRequired, kRequired) << "seals: " << seals;

  for (const off_t new_size : {off_t{0}, size - 64, size + 64, size + (off_t{1} << 20)}) {
    errno = 0;
    EXPECT_EQ(::ftruncate(segment.fd(), new_size), -1) << "resized to " << new_size;
    EXPECT_EQ(errno, EPERM) << "resize to " << new_size << ": " << std::strerror(errno);
  }
  // F_SEAL_SEAL: no seal can be added (or the set changed) any more.
  errno = 0;
  EXPECT_EQ(::fcntl(segment.fd(), F_ADD_SEALS, F_SEAL_WRITE), -1);
  EXPECT_EQ(errno, EPERM) << std::strerror(errno);

  // The seals belong to the memory, not to this fd: a worker reopening it gets no way around.
  const std::string path = "/proc/self/fd/" + std::to_string(segment.fd());
  UniqueFd reopened(::open(path.c_str(), O_RDWR | O_CLOEXEC));
  ASSERT_GE(reopened.get(), 0) << std::strerror(errno);
  errno = 0;
  EXPECT_EQ(::ftruncate(reopened.get(), size - 64), -1);
  EXPECT_EQ(errno, EPERM) << std::strerror(errno);

  struct stat st {};
  ASSERT_EQ(::fstat(segment.fd(), &st), 0);
  EXPECT_EQ(st.st_size, size);
}

TEST(Segment, CreatedSegmentStartsWithItsHeaderAndEmptyRings) {
  const SegmentConfig config = small_config();
  Segment segment = Segment::create(config, 42);
  const std::vector<std::byte> bytes = bytes_of(segment);
  ASSERT_EQ(bytes.size(), segment.size());
  // The header in the memory is the one a worker will validate: the creator's layout, byte for
  // byte.
  EXPECT_TRUE(same_layout(header_in(bytes), segment.layout()));
  EXPECT_TRUE(same_layout(segment.layout(), make_segment_layout(config, 42)));
  EXPECT_EQ(segment.layout().incarnation, 42U);

  EXPECT_EQ(segment.control().state.load(), static_cast<std::uint32_t>(WorkerState::kStarting));
  EXPECT_EQ(segment.control().heartbeat_ms.load(), 0U);
  EXPECT_EQ(segment.control().stop_requested.load(), 0U);
  for (RingData* ring : {&segment.to_worker(), &segment.to_supervisor()}) {
    EXPECT_EQ(ring->write_pos.load(), 0U);
    EXPECT_EQ(ring->read_pos.load(), 0U);
  }
  EXPECT_EQ(segment.supervisor_writer().fault(), RingFault::kNone);
  EXPECT_EQ(segment.worker_writer().fault(), RingFault::kNone);
  std::span<const std::byte> record;
  EXPECT_EQ(segment.supervisor_reader().try_read(record), ReadStatus::kEmpty);
  EXPECT_EQ(segment.worker_reader().try_read(record), ReadStatus::kEmpty);
}

// ---------------------------------------------------------------------------------------------
// Layout.

TEST(SegmentLayout, PartsAreCacheLineAlignedDisjointAndSizedAsConfigured) {
  SegmentConfig no_arena = small_config();
  no_arena.arena_slot_count = 0;
  SegmentConfig smallest;
  smallest.to_worker_capacity = kMinRingCapacity;
  smallest.to_supervisor_capacity = kMinRingCapacity;
  smallest.arena_slot_size = 64;
  smallest.arena_slot_count = 1;
  SegmentConfig lopsided;
  lopsided.to_worker_capacity = 64;
  lopsided.to_supervisor_capacity = 1 << 20;
  lopsided.arena_slot_size = 4160;  // 65 cache lines: not page-sized
  lopsided.arena_slot_count = 5;

  for (const SegmentConfig& config :
       {SegmentConfig{}, small_config(), no_arena, smallest, lopsided}) {
    SCOPED_TRACE(testing::Message()
                 << "to_worker " << config.to_worker_capacity << ", to_supervisor "
                 << config.to_supervisor_capacity << ", arena " << config.arena_slot_count << " x "
                 << config.arena_slot_size);
    const SegmentHeader h = make_segment_layout(config, 7);
    EXPECT_EQ(h.magic, kSegmentMagic);
    EXPECT_EQ(h.layout_version, kSegmentLayoutVersion);
    EXPECT_EQ(h.header_size, sizeof(SegmentHeader));
    EXPECT_EQ(h.incarnation, 7U);
    EXPECT_EQ(h.heartbeat_interval_ms, config.heartbeat_interval_ms);
    EXPECT_EQ(h.to_worker_capacity, config.to_worker_capacity);
    EXPECT_EQ(h.to_supervisor_capacity, config.to_supervisor_capacity);
    EXPECT_EQ(h.arena_slot_count, config.arena_slot_count);
    EXPECT_EQ(h.arena_slot_size * h.arena_slot_count,
              config.arena_slot_size * config.arena_slot_count);
    expect_parts_aligned_and_disjoint(h);
    // What the creator computes, the attacher's check must accept.
    EXPECT_EQ(validate_segment_layout(h, h.total_size), "");
  }
}

TEST(SegmentLayout, SegmentViewsCoverExactlyTheirParts) {
  const SegmentConfig config = small_config();
  Segment segment = Segment::create(config, 1);
  const SegmentHeader& h = segment.layout();
  EXPECT_EQ(segment.to_worker_bytes().size(), config.to_worker_capacity);
  EXPECT_EQ(segment.to_supervisor_bytes().size(), config.to_supervisor_capacity);
  EXPECT_EQ(segment.arena().size(), config.arena_slot_size * config.arena_slot_count);
  EXPECT_EQ(segment.supervisor_writer().capacity(), config.to_worker_capacity);
  EXPECT_EQ(segment.worker_reader().capacity(), config.to_worker_capacity);
  EXPECT_EQ(segment.worker_writer().capacity(), config.to_supervisor_capacity);
  EXPECT_EQ(segment.supervisor_reader().capacity(), config.to_supervisor_capacity);
  // The writer and the reader of each direction share one RingData; the two directions do not.
  EXPECT_EQ(&segment.supervisor_writer().data(), &segment.worker_reader().data());
  EXPECT_EQ(&segment.worker_writer().data(), &segment.supervisor_reader().data());
  EXPECT_NE(&segment.supervisor_writer().data(), &segment.worker_writer().data());

  // Each view points at base + its offset; the mapping itself is page-aligned.
  const auto* base = reinterpret_cast<const std::byte*>(&segment.control()) - h.control_offset;
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(base) % 4096, 0U);
  const auto at = [&](const void* p) {
    return static_cast<std::uint64_t>(static_cast<const std::byte*>(p) - base);
  };
  EXPECT_EQ(at(&segment.to_worker()), h.to_worker_ring_offset);
  EXPECT_EQ(at(&segment.to_supervisor()), h.to_supervisor_ring_offset);
  EXPECT_EQ(at(segment.to_worker_bytes().data()), h.to_worker_bytes_offset);
  EXPECT_EQ(at(segment.to_supervisor_bytes().data()), h.to_supervisor_bytes_offset);
  EXPECT_EQ(at(segment.arena().data()), h.arena_offset);
  EXPECT_LE(at(segment.arena().data()) + segment.arena().size(), segment.size());
}

TEST(SegmentLayout, RejectsImpossibleConfigsWithAMessage) {
  struct Case {
    const char* what;
    SegmentConfig config;
  };
  std::vector<Case> cases;
  const auto with = [&](const char* what, auto change) {
    SegmentConfig config = small_config();
    change(config);
    cases.push_back({what, config});
  };
  with("to_worker not a power of two", [](SegmentConfig& c) { c.to_worker_capacity = 3000; });
  with("to_supervisor not a power of two",
       [](SegmentConfig& c) { c.to_supervisor_capacity = 4096 + 64; });
  with("zero ring capacity", [](SegmentConfig& c) { c.to_worker_capacity = 0; });
  with("ring below the minimum", [](SegmentConfig& c) { c.to_supervisor_capacity = 32; });
  with("ring above the maximum",
       [](SegmentConfig& c) { c.to_worker_capacity = kMaxRingCapacity * 2; });
  with("zero heartbeat interval", [](SegmentConfig& c) { c.heartbeat_interval_ms = 0; });
  with("slot size not a multiple of 64", [](SegmentConfig& c) { c.arena_slot_size = 100; });
  with("slot size 65", [](SegmentConfig& c) { c.arena_slot_size = 65; });
  with("zero slot size with slots", [](SegmentConfig& c) { c.arena_slot_size = 0; });
  with("arena larger than any segment", [](SegmentConfig& c) {
    c.arena_slot_size = std::uint64_t{1} << 40;
    c.arena_slot_count = 2;
  });
  with("arena size overflowing 64 bits", [](SegmentConfig& c) {
    c.arena_slot_size = std::uint64_t{1} << 63;
    c.arena_slot_count = 4;
  });

  for (const Case& c : cases) {
    const auto error = error_from([&] { make_segment_layout(c.config, 1); });
    ASSERT_TRUE(error.has_value()) << c.what << ": accepted";
    EXPECT_FALSE(error->empty()) << c.what;
    // Segment::create refuses it too, before it has created anything that could leak.
    const std::size_t fds_before = count_open_fds();
    EXPECT_TRUE(error_from([&] { Segment::create(c.config, 1); }).has_value()) << c.what;
    EXPECT_EQ(count_open_fds(), fds_before) << c.what;
  }
}

// ---------------------------------------------------------------------------------------------
// Attach.

// Exit codes of the attaching child, one per step, so a failure says which step failed.
enum AttachChildExit : int {
  kAttachChildOk = 0,
  kAttachChildDupFailed = 10,
  kAttachChildAttachThrew = 11,
  kAttachChildLayoutDiffers = 12,
  kAttachChildNoRequest = 13,
  kAttachChildWrongRequest = 14,
  kAttachChildWriteFailed = 15,
};

constexpr std::uint64_t kChildHeartbeat = 0x0123'4567'89AB'CDEF;
constexpr std::string_view kRequest = "request from the supervisor";
constexpr std::string_view kReply = "reply from the worker";

// What a worker does with its inherited fd: attach to its own dup, check the layout, take the
// supervisor's record, report a heartbeat and answer through its own ring.
int attach_and_reply(int inherited_fd, const SegmentHeader& expected) {
  const int fd = ::dup(inherited_fd);
  if (fd < 0) return kAttachChildDupFailed;
  std::optional<Segment> segment;
  try {
    segment.emplace(Segment::attach(fd));
  } catch (const Error& e) {
    std::fprintf(stderr, "child: %s\n", e.what());
    return kAttachChildAttachThrew;
  }
  if (segment->fd() != fd || !same_layout(segment->layout(), expected)) {
    return kAttachChildLayoutDiffers;
  }
  RingReader reader = segment->worker_reader();
  std::span<const std::byte> request;
  if (reader.try_read(request) != ReadStatus::kOk) return kAttachChildNoRequest;
  if (string_of(request) != kRequest) return kAttachChildWrongRequest;
  reader.release();
  segment->control().pid.store(static_cast<std::uint32_t>(::getpid()));
  segment->control().heartbeat_ms.store(kChildHeartbeat, std::memory_order_release);
  RingWriter writer = segment->worker_writer();
  if (writer.try_write(bytes_of(kReply)) != WriteStatus::kOk) return kAttachChildWriteFailed;
  writer.publish();
  return kAttachChildOk;
}

TEST(Segment, SecondProcessAttachesAndBothSeeEachOthersWrites) {
  Segment segment = Segment::create(small_config(), 9);
  RingWriter to_worker = segment.supervisor_writer();
  ASSERT_EQ(to_worker.try_write(bytes_of(kRequest)), WriteStatus::kOk);
  to_worker.publish();

  const SegmentHeader expected = segment.layout();
  ChildProcess worker =
      ChildProcess::fork([&] { return attach_and_reply(segment.fd(), expected); });
  ASSERT_TRUE(worker.started());
  const pid_t worker_pid = worker.pid();
  // The child writes everything before it exits; its exit (seen through the pidfd and waitpid)
  // orders those writes before our reads.
  const auto status = worker.wait_for_exit(kChildBound);
  ASSERT_TRUE(status.has_value()) << "worker did not exit within the bound";
  ASSERT_TRUE(WIFEXITED(*status)) << "worker died: status " << *status;
  ASSERT_EQ(WEXITSTATUS(*status), kAttachChildOk) << "see AttachChildExit";

  EXPECT_EQ(segment.control().heartbeat_ms.load(std::memory_order_acquire), kChildHeartbeat);
  EXPECT_EQ(segment.control().pid.load(), static_cast<std::uint32_t>(worker_pid));
  // The worker released our record: the supervisor's ring is empty again.
  EXPECT_EQ(segment.to_worker().read_pos.load(), segment.to_worker().write_pos.load());

  RingReader from_worker = segment.supervisor_reader();
  std::span<const std::byte> reply;
  ASSERT_EQ(from_worker.try_read(reply), ReadStatus::kOk) << to_string(from_worker.fault());
  EXPECT_EQ(string_of(reply), kReply);
  EXPECT_EQ(from_worker.try_read(reply), ReadStatus::kEmpty);
}

// Attach in the same process maps the same memory a second time: a cheap check that the two
// mappings alias, and that the attached Segment owns (and closes) the fd it was given.
TEST(Segment, AttachedSegmentSharesMemoryAndOwnsItsFd) {
  Segment created = Segment::create(small_config(), 3);
  const int fd = ::dup(created.fd());
  ASSERT_GE(fd, 0);
  {
    Segment attached = Segment::attach(fd);
    EXPECT_EQ(attached.fd(), fd);
    EXPECT_EQ(attached.size(), created.size());
    EXPECT_TRUE(same_layout(attached.layout(), created.layout()));
    EXPECT_NE(&attached.control(), &created.control());
    attached.control().tasks_done.store(77);
    EXPECT_EQ(created.control().tasks_done.load(), 77U);
  }
  EXPECT_TRUE(is_closed(fd));
  // The creator's mapping is untouched by the attacher's unmapping.
  EXPECT_EQ(created.control().tasks_done.load(), 77U);
}

// The bytes of a real segment, copied into a fresh memfd, attach: the control case for the
// corruption tests below, which change one thing in such a copy.
TEST(Segment, AttachAcceptsAnUnalteredCopy) {
  Segment original = Segment::create(small_config(), 5);
  const std::vector<std::byte> bytes = bytes_of(original);
  ASSERT_EQ(bytes.size(), original.size());
  const int fd = memfd_with(bytes);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  Segment copy = Segment::attach(fd);
  EXPECT_TRUE(same_layout(copy.layout(), original.layout()));
  EXPECT_EQ(copy.size(), original.size());
}

// Attaches to `fd` (taking it), expects a procpool::Error, and checks that neither the fd nor a
// mapping survived the failure. Returns the message.
std::string expect_attach_fails_without_leaks(int fd, const std::string& what) {
  const std::size_t mappings_before = count_mappings(kCopyMapping);
  const auto error = error_from([&] { Segment::attach(fd); });
  EXPECT_TRUE(error.has_value()) << what << ": attached";
  if (!error) return {};
  EXPECT_FALSE(error->empty()) << what;
  EXPECT_TRUE(is_closed(fd)) << what << ": attach took the fd but left it open";
  EXPECT_EQ(count_mappings(kCopyMapping), mappings_before) << what << ": mapping left behind";
  return *error;
}

TEST(Segment, AttachRejectsRandomBytes) {
  std::mt19937_64 rng(20240611);
  for (const std::size_t size :
       {sizeof(SegmentHeader), std::size_t{128}, std::size_t{4096},
        std::size_t{13'632} /* small_config's size */, std::size_t{65'537}}) {
    std::vector<std::byte> bytes(size);
    for (std::byte& b : bytes) b = static_cast<std::byte>(rng());
    const std::size_t fds_before = count_open_fds();
    const int fd = memfd_with(bytes);
    ASSERT_GE(fd, 0) << std::strerror(errno);
    const std::string what = "random " + std::to_string(size) + " bytes";
    expect_attach_fails_without_leaks(fd, what);
    EXPECT_EQ(count_open_fds(), fds_before) << what;
  }
}

TEST(Segment, AttachRejectsTruncatedSegments) {
  Segment original = Segment::create(small_config(), 5);
  const std::vector<std::byte> bytes = bytes_of(original);
  // Truncated copies of a real segment: the start of a valid header, but too few bytes.
  for (const std::size_t size :
       {std::size_t{0}, std::size_t{1}, sizeof(SegmentHeader) - 1, sizeof(SegmentHeader),
        std::size_t{2 * kCacheLineSize}, bytes.size() - 64}) {
    const std::size_t fds_before = count_open_fds();
    const int fd = memfd_with(std::vector<std::byte>(bytes.begin(), bytes.begin() + size));
    ASSERT_GE(fd, 0) << std::strerror(errno);
    expect_attach_fails_without_leaks(fd, "first " + std::to_string(size) + " bytes");
    EXPECT_EQ(count_open_fds(), fds_before) << size << " bytes";
  }
}

// One field of a real segment's header changed in a copy. Each must be refused: a worker must
// not map and use parts that are not where, or not as large as, the header says.
TEST(Segment, AttachRejectsEachCorruptedHeaderField) {
  Segment original = Segment::create(small_config(), 5);
  const std::vector<std::byte> pristine = bytes_of(original);
  ASSERT_EQ(pristine.size(), original.size());
  const std::uint64_t total = original.size();
  constexpr std::uint64_t kMax = std::numeric_limits<std::uint64_t>::max();

  struct Corruption {
    const char* what;
    void (*apply)(SegmentHeader&, std::uint64_t total);
    const char* message_mentions;  // a word the error must contain, or ""
  };
  const Corruption corruptions[] = {
      {"magic one bit off", [](SegmentHeader& h, std::uint64_t) { h.magic ^= 1; }, "magic"},
      {"magic zero", [](SegmentHeader& h, std::uint64_t) { h.magic = 0; }, "magic"},
      {"next layout version",
       [](SegmentHeader& h, std::uint64_t) { h.layout_version = kSegmentLayoutVersion + 1; },
       "version"},
      {"layout version 0", [](SegmentHeader& h, std::uint64_t) { h.layout_version = 0; },
       "version"},
      {"header size", [](SegmentHeader& h, std::uint64_t) { h.header_size = 120; }, ""},
      {"total_size + 64", [](SegmentHeader& h, std::uint64_t) { h.total_size += 64; }, "bytes"},
      {"total_size - 64", [](SegmentHeader& h, std::uint64_t) { h.total_size -= 64; }, "bytes"},
      {"total_size max", [](SegmentHeader& h, std::uint64_t) { h.total_size = kMax; }, "bytes"},
      {"to_worker capacity not a power of two",
       [](SegmentHeader& h, std::uint64_t) { h.to_worker_capacity = 3000; }, ""},
      {"to_supervisor capacity doubled",
       [](SegmentHeader& h, std::uint64_t) { h.to_supervisor_capacity *= 2; }, ""},
      {"control misaligned", [](SegmentHeader& h, std::uint64_t) { h.control_offset += 8; }, ""},
      {"control over the header", [](SegmentHeader& h, std::uint64_t) { h.control_offset = 0; },
       ""},
      // Misaligned parts with room made for them, so that only the alignment is wrong.
      {"to_supervisor ring misaligned",
       [](SegmentHeader& h, std::uint64_t) {
         h.to_supervisor_ring_offset += 8;
         h.to_worker_bytes_offset += kCacheLineSize;
         h.to_supervisor_bytes_offset += kCacheLineSize;
         h.arena_offset += kCacheLineSize;
         h.arena_slot_count -= 1;
       },
       "aligned"},
      {"arena misaligned",
       [](SegmentHeader& h, std::uint64_t) {
         h.arena_offset += 8;
         h.arena_slot_count -= 1;
       },
       "aligned"},
      {"rings overlap",
       [](SegmentHeader& h, std::uint64_t) {
         h.to_worker_ring_offset = h.to_supervisor_ring_offset;
       },
       ""},
      {"to_worker bytes near 2^64",
       [](SegmentHeader& h, std::uint64_t) { h.to_worker_bytes_offset = kMax - 63; }, ""},
      {"arena at the end", [](SegmentHeader& h, std::uint64_t t) { h.arena_offset = t; }, ""},
      {"arena offset near 2^64",
       [](SegmentHeader& h, std::uint64_t) { h.arena_offset = kMax - 63; }, ""},
      {"one slot too many", [](SegmentHeader& h, std::uint64_t) { h.arena_slot_count += 1; }, ""},
      {"slot size not a multiple of 64",
       [](SegmentHeader& h, std::uint64_t) { h.arena_slot_size = 100; }, ""},
      {"arena product overflowing",
       [](SegmentHeader& h, std::uint64_t) {
         h.arena_slot_size = std::uint64_t{1} << 62;
         h.arena_slot_count = 8;
       },
       ""},
      {"zero heartbeat interval",
       [](SegmentHeader& h, std::uint64_t) { h.heartbeat_interval_ms = 0; }, ""},
  };

  for (const Corruption& corruption : corruptions) {
    std::vector<std::byte> bytes = pristine;
    SegmentHeader header = header_in(bytes);
    corruption.apply(header, total);
    set_header_in(bytes, header);
    const std::size_t fds_before = count_open_fds();
    const int fd = memfd_with(bytes);
    ASSERT_GE(fd, 0) << std::strerror(errno);
    const std::string message = expect_attach_fails_without_leaks(fd, corruption.what);
    EXPECT_TRUE(contains(message, corruption.message_mentions))
        << corruption.what << ": \"" << message << "\"";
    EXPECT_EQ(count_open_fds(), fds_before) << corruption.what;
  }
}

// A copy whose header is intact but whose file is larger than the header says: the sizes
// disagree, so the header cannot be trusted to describe this memory.
TEST(Segment, AttachRejectsCopyLargerThanItsHeaderSays) {
  Segment original = Segment::create(small_config(), 5);
  std::vector<std::byte> bytes = bytes_of(original);
  bytes.resize(bytes.size() + 4096);
  const int fd = memfd_with(bytes);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  const std::string message = expect_attach_fails_without_leaks(fd, "4096 bytes too many");
  EXPECT_TRUE(contains(message, std::to_string(original.size()))) << message;
}

TEST(Segment, AttachRejectsFdsThatAreNotMemory) {
  const std::size_t fds_before = count_open_fds();
  {
    Pipe pipe = make_pipe();
    ASSERT_GE(pipe.read.get(), 0) << std::strerror(errno);
    const int read_end = pipe.read.release();
    expect_attach_fails_without_leaks(read_end, "pipe");
  }
  {
    const int dev_null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
    ASSERT_GE(dev_null, 0) << std::strerror(errno);
    expect_attach_fails_without_leaks(dev_null, "/dev/null");
  }
  {
    const int dir = ::open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ASSERT_GE(dir, 0) << std::strerror(errno);
    expect_attach_fails_without_leaks(dir, "a directory");
  }
  EXPECT_EQ(count_open_fds(), fds_before);
  // Not an fd at all: the fstat fails, which must surface as an Error too.
  const auto error = error_from([] { Segment::attach(-1); });
  ASSERT_TRUE(error.has_value());
  EXPECT_TRUE(contains(*error, std::strerror(EBADF))) << *error;
}

// A worker given a read-only fd cannot map the segment for writing: a clean Error, not a crash
// at its first store.
TEST(Segment, AttachRejectsReadOnlyFdOfARealSegment) {
  Segment original = Segment::create(small_config(), 5);
  const std::size_t fds_before = count_open_fds();
  const std::string path = "/proc/self/fd/" + std::to_string(original.fd());
  const int read_only = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(read_only, 0) << std::strerror(errno);
  const auto error = error_from([&] { Segment::attach(read_only); });
  ASSERT_TRUE(error.has_value());
  // The system call's own reason reaches the message (throw_errno keeps errno).
  EXPECT_TRUE(contains(*error, std::strerror(EACCES))) << *error;
  EXPECT_TRUE(is_closed(read_only));
  EXPECT_EQ(count_open_fds(), fds_before);
}

// Random damage to a real header: attach either refuses it, or every part it then hands out lies
// inside the mapping (touching the first and last byte of each would fault otherwise).
TEST(Segment, AttachOfRandomlyCorruptedHeaderNeverHandsOutPartsOutsideTheMapping) {
  Segment original = Segment::create(small_config(), 5);
  const std::vector<std::byte> pristine = bytes_of(original);
  const SegmentHeader good = original.layout();
  UniqueFd copy(memfd_with(pristine));
  ASSERT_GE(copy.get(), 0) << std::strerror(errno);

  // Values likely to sit on a boundary of some check.
  const std::uint64_t interesting[] = {0,
                                       1,
                                       8,
                                       63,
                                       64,
                                       128,
                                       4096,
                                       good.total_size,
                                       good.total_size - 64,
                                       good.total_size + 64,
                                       good.arena_offset,
                                       good.to_supervisor_bytes_offset,
                                       std::uint64_t{1} << 31,
                                       std::uint64_t{1} << 32,
                                       std::uint64_t{1} << 40,
                                       std::numeric_limits<std::uint64_t>::max(),
                                       std::numeric_limits<std::uint64_t>::max() - 63};
  std::mt19937_64 rng(777);
  const std::size_t fds_before = count_open_fds();
  int accepted = 0;
  for (int i = 0; i < 3000; ++i) {
    SegmentHeader header = good;
    // Damage one to three 4- or 8-byte fields (the header is made of them, at fixed offsets).
    const int damaged = 1 + static_cast<int>(rng() % 3);
    for (int d = 0; d < damaged; ++d) {
      const std::uint64_t value =
          rng() % 2 == 0 ? interesting[rng() % std::size(interesting)] : rng() >> (rng() % 64);
      auto* raw = reinterpret_cast<std::byte*>(&header);
      if (rng() % 2 == 0) {
        const std::size_t at = 8 * (rng() % (sizeof header / 8));
        std::memcpy(raw + at, &value, 8);
      } else {
        const std::size_t at = 4 * (rng() % (sizeof header / 4));
        const auto narrow = static_cast<std::uint32_t>(value);
        std::memcpy(raw + at, &narrow, 4);
      }
    }
    ASSERT_EQ(::pwrite(copy.get(), &header, sizeof header, 0), static_cast<ssize_t>(sizeof header));
    const int fd = ::dup(copy.get());
    ASSERT_GE(fd, 0);
    std::optional<Segment> segment;
    try {
      segment.emplace(Segment::attach(fd));
    } catch (const Error&) {
      EXPECT_TRUE(is_closed(fd)) << "iteration " << i;
      continue;
    }
    ++accepted;
    EXPECT_TRUE(same_layout(segment->layout(), header)) << "iteration " << i;
    EXPECT_EQ(segment->size(), pristine.size()) << "iteration " << i;
    expect_parts_aligned_and_disjoint(segment->layout());
    for (const std::span<std::byte> part :
         {segment->to_worker_bytes(), segment->to_supervisor_bytes(), segment->arena()}) {
      if (part.empty()) continue;
      part.front() = part.front();
      part.back() = part.back();
    }
    segment->control().tasks_failed.store(segment->control().tasks_failed.load());
    segment->to_worker().read_pos.store(segment->to_worker().read_pos.load());
    segment->to_supervisor().read_pos.store(segment->to_supervisor().read_pos.load());
  }
  EXPECT_EQ(count_open_fds(), fds_before);
  RecordProperty("accepted", accepted);
  // Damage to fields nothing depends on (incarnation, heartbeat interval) must still be accepted.
  EXPECT_GT(accepted, 0);
}

// ---------------------------------------------------------------------------------------------
// Nothing left behind.

TEST(Segment, DestroyedSegmentClosesItsFdAndUnmapsItsMemory) {
  const std::size_t mappings_before = count_mappings(kSegmentMapping);
  int fd = -1;
  {
    Segment segment = Segment::create(small_config(), 1);
    fd = segment.fd();
    ASSERT_FALSE(is_closed(fd));
    EXPECT_GT(count_mappings(kSegmentMapping), mappings_before);
  }
  EXPECT_TRUE(is_closed(fd)) << "fd " << fd << " still open after destruction";
  EXPECT_EQ(count_mappings(kSegmentMapping), mappings_before);
}

TEST(Segment, MoveTransfersOwnershipAndMoveAssignReleasesTheTarget) {
  const std::size_t mappings_before = count_mappings(kSegmentMapping);
  Segment first = Segment::create(small_config(), 1);
  const int first_fd = first.fd();
  Segment moved(std::move(first));
  EXPECT_EQ(moved.fd(), first_fd);
  EXPECT_EQ(first.fd(), -1);  // NOLINT(bugprone-use-after-move): the moved-from state is pinned
  moved.control().tasks_done.store(5);

  Segment second = Segment::create(small_config(), 2);
  const int second_fd = second.fd();
  EXPECT_EQ(count_mappings(kSegmentMapping), mappings_before + 2);
  second = std::move(moved);
  EXPECT_TRUE(is_closed(second_fd)) << "move-assignment leaked the target's old segment";
  EXPECT_EQ(second.fd(), first_fd);
  EXPECT_EQ(second.layout().incarnation, 1U);
  EXPECT_EQ(second.control().tasks_done.load(), 5U);
  EXPECT_EQ(count_mappings(kSegmentMapping), mappings_before + 1);
}

TEST(Segment, DestroyedSegmentsLeaveNothingInDevShm) {
  if (!std::filesystem::is_directory("/dev/shm")) GTEST_SKIP() << "no /dev/shm here";
  const std::set<std::string> before = list_dev_shm();
  {
    std::vector<Segment> segments;
    for (std::uint64_t i = 0; i < 4; ++i) segments.push_back(Segment::create(small_config(), i));
    segments.push_back(Segment::create(SegmentConfig{}, 4));
    // Not only after: a memfd has no name anywhere, even while it is in use.
    EXPECT_EQ(list_dev_shm(), before) << "while the segments exist";
  }
  EXPECT_EQ(list_dev_shm(), before);
}

// The creator dies without running a destructor (SIGKILL): memfds die with their last fd and
// mapping, so there is nothing for anyone to sweep (docs/design-rules.md §15, 22).
TEST(Segment, CreatorKilledLeavesNothingInDevShm) {
  if (!std::filesystem::is_directory("/dev/shm")) GTEST_SKIP() << "no /dev/shm here";
  const std::set<std::string> before = list_dev_shm();
  Pipe ready = make_pipe();  // child -> parent: "my segments exist"
  Pipe hold = make_pipe();   // parent -> child: never written; EOF only if the parent dies
  ASSERT_GE(ready.read.get(), 0) << std::strerror(errno);
  ASSERT_GE(hold.read.get(), 0) << std::strerror(errno);

  ChildProcess creator = ChildProcess::fork([&] {
    ready.read.reset();
    hold.write.reset();
    std::vector<Segment> segments;
    for (std::uint64_t i = 0; i < 4; ++i) segments.push_back(Segment::create(small_config(), i));
    segments.push_back(Segment::create(SegmentConfig{}, 4));
    const char exist = 'S';
    if (::write(ready.write.get(), &exist, 1) != 1) return 2;
    // Block until killed. If the test process dies first, the EOF on `hold` ends us, so no child
    // outlives its test.
    char never;
    while (::read(hold.read.get(), &never, 1) < 0 && errno == EINTR) {
    }
    return 3;
  });
  ASSERT_TRUE(creator.started());
  ready.write.reset();
  hold.read.reset();

  pollfd pfd{ready.read.get(), POLLIN, 0};
  ASSERT_EQ(::poll(&pfd, 1, static_cast<int>(std::chrono::milliseconds(kChildBound).count())), 1)
      << "the creator did not report its segments within the bound";
  char signal_byte = 0;
  ASSERT_EQ(::read(ready.read.get(), &signal_byte, 1), 1) << "the creator exited early";
  ASSERT_EQ(signal_byte, 'S');
  EXPECT_EQ(list_dev_shm(), before) << "while the creator is alive";

  creator.kill(SIGKILL);
  const auto status = creator.wait_for_exit(kChildBound);
  ASSERT_TRUE(status.has_value()) << "the creator did not die within the bound";
  EXPECT_TRUE(WIFSIGNALED(*status) && WTERMSIG(*status) == SIGKILL) << "status " << *status;
  EXPECT_EQ(list_dev_shm(), before);
}

}  // namespace
}  // namespace procpool
