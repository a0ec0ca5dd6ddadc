// Attaching to a segment from a second process, and refusing anything that is not a segment or
// whose header is damaged.

#include "segment_test_support.hpp"

namespace procpool {
namespace {

using namespace segment_test;

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
// supervisor's record, report a heartbeat (and its pid, as the running task id) and answer
// through its own ring.
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
  segment->control().current_task_id.store(static_cast<std::uint64_t>(::getpid()));
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
  EXPECT_EQ(segment.control().current_task_id.load(), static_cast<std::uint64_t>(worker_pid));
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
    attached.control().current_task_id.store(77);
    EXPECT_EQ(created.control().current_task_id.load(), 77U);
  }
  EXPECT_TRUE(is_closed(fd));
  // The creator's mapping is untouched by the attacher's unmapping.
  EXPECT_EQ(created.control().current_task_id.load(), 77U);
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
       [](SegmentHeader& h, std::uint64_t) { h.to_supervisor_ring_offset += 8; }, "aligned"},
      {"to_supervisor bytes misaligned",
       [](SegmentHeader& h, std::uint64_t) { h.to_supervisor_bytes_offset += 8; }, "aligned"},
      {"rings overlap",
       [](SegmentHeader& h, std::uint64_t) {
         h.to_worker_ring_offset = h.to_supervisor_ring_offset;
       },
       ""},
      {"to_worker bytes near 2^64",
       [](SegmentHeader& h, std::uint64_t) { h.to_worker_bytes_offset = kMax - 63; }, ""},
      {"to_supervisor bytes at the end",
       [](SegmentHeader& h, std::uint64_t t) { h.to_supervisor_bytes_offset = t; }, ""},
      {"to_supervisor bytes near 2^64",
       [](SegmentHeader& h, std::uint64_t) { h.to_supervisor_bytes_offset = kMax - 63; }, ""},
      {"to_supervisor bytes one line further",
       [](SegmentHeader& h, std::uint64_t) { h.to_supervisor_bytes_offset += kCacheLineSize; }, ""},
      {"padding not zero", [](SegmentHeader& h, std::uint64_t) { h.padding = 1; }, "padding"},
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
                                       good.to_worker_bytes_offset,
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
         {segment->to_worker_bytes(), segment->to_supervisor_bytes()}) {
      if (part.empty()) continue;
      part.front() = part.front();
      part.back() = part.back();
    }
    segment->control().heartbeat_ms.store(segment->control().heartbeat_ms.load());
    segment->to_worker().read_pos.store(segment->to_worker().read_pos.load());
    segment->to_supervisor().read_pos.store(segment->to_supervisor().read_pos.load());
  }
  EXPECT_EQ(count_open_fds(), fds_before);
  RecordProperty("accepted", accepted);
  // Damage to fields nothing depends on (incarnation, heartbeat interval) must still be accepted.
  EXPECT_GT(accepted, 0);
}

}  // namespace
}  // namespace procpool
