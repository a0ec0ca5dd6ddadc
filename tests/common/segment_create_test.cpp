// Creating a shared-memory segment: owner-only, close-on-exec, sealed memfd; where its parts are;
// which configs are refused.

#include "segment_test_support.hpp"

namespace procpool {
namespace {

using namespace segment_test;

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

  EXPECT_EQ(segment.control().heartbeat_ms.load(), 0U);
  EXPECT_EQ(segment.control().current_task_id.load(), 0U);
  EXPECT_EQ(segment.control().cancel_task_id.load(), 0U);
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
  SegmentConfig smallest;
  smallest.to_worker_capacity = kMinRingCapacity;
  smallest.to_supervisor_capacity = kMinRingCapacity;
  SegmentConfig lopsided;
  lopsided.to_worker_capacity = 64;
  lopsided.to_supervisor_capacity = 1 << 20;

  for (const SegmentConfig& config : {SegmentConfig{}, small_config(), smallest, lopsided}) {
    SCOPED_TRACE(testing::Message() << "to_worker " << config.to_worker_capacity
                                    << ", to_supervisor " << config.to_supervisor_capacity);
    const SegmentHeader h = make_segment_layout(config, 7);
    EXPECT_EQ(h.magic, kSegmentMagic);
    EXPECT_EQ(h.layout_version, kSegmentLayoutVersion);
    EXPECT_EQ(h.header_size, sizeof(SegmentHeader));
    EXPECT_EQ(h.incarnation, 7U);
    EXPECT_EQ(h.heartbeat_interval_ms, config.heartbeat_interval_ms);
    EXPECT_EQ(h.to_worker_capacity, config.to_worker_capacity);
    EXPECT_EQ(h.to_supervisor_capacity, config.to_supervisor_capacity);
    EXPECT_EQ(h.padding, 0U);
    expect_parts_aligned_and_disjoint(h);
    // Nothing is laid out that the protocol does not use: the segment ends with the last ring.
    EXPECT_EQ(h.total_size, h.to_supervisor_bytes_offset + h.to_supervisor_capacity);
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
  EXPECT_EQ(at(segment.to_supervisor_bytes().data()) + segment.to_supervisor_bytes().size(),
            segment.size());
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

}  // namespace
}  // namespace procpool
