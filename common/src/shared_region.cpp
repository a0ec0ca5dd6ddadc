#include "procpool/shared_region.hpp"

#include <fcntl.h>     // fcntl, F_ADD_SEALS, F_GET_SEALS
#include <sys/mman.h>  // memfd_create, mmap
#include <sys/stat.h>  // fstat, fchmod
#include <unistd.h>    // close, ftruncate

#include <cerrno>   // errno
#include <string>   // std::to_string
#include <utility>  // std::exchange

#include "procpool/error.hpp"

namespace procpool {
namespace {

constexpr int kSeals = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL;

std::byte* map_region(int fd, std::uint64_t size) {
  void* base = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (base == MAP_FAILED) {
    const int error = errno;
    throw_errno(error, "shared memory: mmap of " + std::to_string(size) + " bytes");
  }
  return static_cast<std::byte*>(base);
}

struct FdGuard {
  int fd;
  ~FdGuard() {
    if (fd >= 0) ::close(fd);
  }
  int release() noexcept { return std::exchange(fd, -1); }
};

}  // namespace

SharedRegion SharedRegion::create(std::uint64_t size) {
  if (size == 0) throw Error("shared memory: size must be > 0");
  FdGuard fd{::memfd_create("procpool-shared", MFD_CLOEXEC | MFD_ALLOW_SEALING)};
  if (fd.fd < 0) throw_errno(errno, "shared memory: memfd_create");
  if (::fchmod(fd.fd, 0600) != 0) throw_errno(errno, "shared memory: fchmod 0600");
  if (::ftruncate(fd.fd, static_cast<off_t>(size)) != 0) {
    const int error = errno;
    throw_errno(error, "shared memory: ftruncate to " + std::to_string(size) + " bytes");
  }
  if (::fcntl(fd.fd, F_ADD_SEALS, kSeals) != 0) throw_errno(errno, "shared memory: sealing");
  std::byte* base = map_region(fd.fd, size);
  return SharedRegion(fd.release(), base, size);
}

SharedRegion SharedRegion::attach(int raw_fd) {
  FdGuard fd{raw_fd};
  struct stat st {};
  if (::fstat(fd.fd, &st) != 0) {
    const int error = errno;
    throw_errno(error, "shared memory: fstat of fd " + std::to_string(raw_fd));
  }
  const int seals = ::fcntl(fd.fd, F_GET_SEALS);
  if (!S_ISREG(st.st_mode) || st.st_size <= 0 || seals < 0 || (seals & kSeals) != kSeals) {
    throw Error("shared memory: fd " + std::to_string(raw_fd) +
                " is not a sealed procpool shared-memory region");
  }
  const auto size = static_cast<std::uint64_t>(st.st_size);
  std::byte* base = map_region(fd.fd, size);
  return SharedRegion(fd.release(), base, size);
}

SharedRegion::SharedRegion(SharedRegion&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      base_(std::exchange(other.base_, nullptr)),
      size_(std::exchange(other.size_, 0)) {}

SharedRegion& SharedRegion::operator=(SharedRegion&& other) noexcept {
  if (this != &other) {
    reset();
    fd_ = std::exchange(other.fd_, -1);
    base_ = std::exchange(other.base_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

SharedRegion::~SharedRegion() { reset(); }

void SharedRegion::reset() noexcept {
  if (base_ != nullptr) ::munmap(base_, size_);
  if (fd_ >= 0) ::close(fd_);
  base_ = nullptr;
  fd_ = -1;
  size_ = 0;
}

}  // namespace procpool
