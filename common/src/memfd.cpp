#include "procpool/detail/memfd.hpp"

#include <fcntl.h>     // fcntl, F_ADD_SEALS, F_GET_SEALS
#include <sys/mman.h>  // memfd_create, mmap
#include <sys/stat.h>  // fchmod
#include <unistd.h>    // close, ftruncate

#include <cerrno>  // errno
#include <string>  // std::string, std::to_string

#include "procpool/error.hpp"
#include "procpool/unique_fd.hpp"

namespace procpool::detail {
namespace {
constexpr int kSizeSeals = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL;
}

int create_sealed_memfd(const char* name, std::uint64_t size, std::string_view what) {
  const std::string prefix(what);
  // CLOEXEC: the fd reaches exactly the processes the launcher hands it to, no other child.
  UniqueFd fd{::memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING)};
  if (fd.get() < 0) throw_errno(errno, prefix + ": memfd_create");
  if (::fchmod(fd.get(), 0600) != 0) throw_errno(errno, prefix + ": fchmod 0600");
  if (::ftruncate(fd.get(), static_cast<off_t>(size)) != 0) {
    const int error = errno;
    throw_errno(error, prefix + ": ftruncate to " + std::to_string(size) + " bytes");
  }
  if (::fcntl(fd.get(), F_ADD_SEALS, kSizeSeals) != 0) throw_errno(errno, prefix + ": sealing");
  return fd.release();
}

bool has_size_seals(int fd) noexcept {
  const int seals = ::fcntl(fd, F_GET_SEALS);
  return seals >= 0 && (seals & kSizeSeals) == kSizeSeals;
}

std::byte* map_shared(int fd, std::uint64_t size, std::string_view what) {
  void* base = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (base == MAP_FAILED) {
    const int error = errno;
    throw_errno(error, std::string(what) + ": mmap of " + std::to_string(size) + " bytes");
  }
  return static_cast<std::byte*>(base);
}

}  // namespace procpool::detail
