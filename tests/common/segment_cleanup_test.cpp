// A segment leaves nothing behind (no /dev/shm name, no fd, no mapping) however its owner ends.

#include "segment_test_support.hpp"

namespace procpool {
namespace {

using namespace segment_test;

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
  moved.control().current_task_id.store(5);

  Segment second = Segment::create(small_config(), 2);
  const int second_fd = second.fd();
  EXPECT_EQ(count_mappings(kSegmentMapping), mappings_before + 2);
  second = std::move(moved);
  EXPECT_TRUE(is_closed(second_fd)) << "move-assignment leaked the target's old segment";
  EXPECT_EQ(second.fd(), first_fd);
  EXPECT_EQ(second.layout().incarnation, 1U);
  EXPECT_EQ(second.control().current_task_id.load(), 5U);
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
