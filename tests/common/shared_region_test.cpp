// Tests of SharedRegion: a zero-filled, sealed, owner-only, close-on-exec memfd that a second
// mapping (a worker's attach) sees byte for byte, and attach refusing what is not one.

#include "procpool/shared_region.hpp"

#include <fcntl.h>  // fcntl, F_GET_SEALS
#include <gtest/gtest.h>
#include <sys/mman.h>  // memfd_create
#include <sys/stat.h>  // fstat
#include <unistd.h>    // dup, ftruncate, pipe

#include <algorithm>  // std::all_of
#include <cerrno>     // errno
#include <utility>    // std::move

#include "procpool/error.hpp"

namespace procpool {
namespace {

TEST(SharedRegion, CreateIsZeroFilledSealedOwnerOnlyAndCloseOnExec) {
  SharedRegion region = SharedRegion::create(100'000);
  ASSERT_EQ(region.bytes().size(), 100'000u);
  EXPECT_TRUE(std::all_of(region.bytes().begin(), region.bytes().end(),
                          [](std::byte b) { return b == std::byte{0}; }));
  struct stat st {};
  ASSERT_EQ(::fstat(region.fd(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_NE(::fcntl(region.fd(), F_GETFD) & FD_CLOEXEC, 0);
  const int seals = ::fcntl(region.fd(), F_GET_SEALS);
  EXPECT_EQ(seals & (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL),
            F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
  EXPECT_NE(::ftruncate(region.fd(), 10), 0);  // nobody can shrink it under a mapping
  EXPECT_EQ(errno, EPERM);
}

TEST(SharedRegion, AnAttachedMappingSeesTheSameBytesBothWays) {
  SharedRegion created = SharedRegion::create(4096 * 3);
  SharedRegion attached = SharedRegion::attach(::dup(created.fd()));
  ASSERT_EQ(attached.bytes().size(), created.bytes().size());
  EXPECT_NE(attached.bytes().data(), created.bytes().data());  // a second mapping
  created.bytes()[5000] = std::byte{42};
  EXPECT_EQ(attached.bytes()[5000], std::byte{42});
  attached.bytes().back() = std::byte{7};
  EXPECT_EQ(created.bytes().back(), std::byte{7});
}

TEST(SharedRegion, AttachRefusesWhatIsNotASealedRegion) {
  const int unsealed = ::memfd_create("not-sealed", MFD_CLOEXEC);
  ASSERT_GE(unsealed, 0);
  ASSERT_EQ(::ftruncate(unsealed, 4096), 0);
  EXPECT_THROW(SharedRegion::attach(unsealed), Error);  // takes (and closes) the fd
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  EXPECT_THROW(SharedRegion::attach(pipe_fds[0]), Error);
  ::close(pipe_fds[1]);
  EXPECT_THROW(SharedRegion::attach(-1), Error);
}

TEST(SharedRegion, ZeroSizeIsRefusedAndMovesTransferOwnership) {
  EXPECT_THROW(SharedRegion::create(0), Error);
  SharedRegion a = SharedRegion::create(64);
  const int fd = a.fd();
  SharedRegion b = std::move(a);
  EXPECT_EQ(b.fd(), fd);
  EXPECT_EQ(a.fd(), -1);  // NOLINT(bugprone-use-after-move): moved-from is empty by contract
  EXPECT_TRUE(a.bytes().empty());
  SharedRegion empty;
  EXPECT_TRUE(empty.bytes().empty());
}

}  // namespace
}  // namespace procpool
