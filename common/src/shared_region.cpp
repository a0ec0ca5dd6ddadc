#include "procpool/shared_region.hpp"

#include <sys/mman.h>  // munmap
#include <sys/stat.h>  // fstat
#include <unistd.h>    // close

#include <cerrno>   // errno
#include <string>   // std::to_string
#include <utility>  // std::exchange

#include "procpool/detail/memfd.hpp"
#include "procpool/error.hpp"
#include "procpool/unique_fd.hpp"

namespace procpool {

SharedRegion SharedRegion::create(std::uint64_t size) {
  if (size == 0) throw Error("shared memory: size must be > 0");
  UniqueFd fd{detail::create_sealed_memfd("procpool-shared", size, "shared memory")};
  std::byte* base = detail::map_shared(fd.get(), size, "shared memory");
  return SharedRegion(fd.release(), base, size);
}

SharedRegion SharedRegion::attach(int raw_fd) {
  UniqueFd fd{raw_fd};
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) {
    const int error = errno;
    throw_errno(error, "shared memory: fstat of fd " + std::to_string(raw_fd));
  }
  if (!S_ISREG(st.st_mode) || st.st_size <= 0 || !detail::has_size_seals(fd.get())) {
    throw Error("shared memory: fd " + std::to_string(raw_fd) +
                " is not a sealed procpool shared-memory region");
  }
  const auto size = static_cast<std::uint64_t>(st.st_size);
  std::byte* base = detail::map_shared(fd.get(), size, "shared memory");
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
