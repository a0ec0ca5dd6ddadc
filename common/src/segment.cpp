#include "procpool/segment.hpp"

#include <fcntl.h>     // fcntl, F_ADD_SEALS
#include <sys/mman.h>  // memfd_create, mmap
#include <sys/stat.h>  // fstat, fchmod
#include <unistd.h>    // close, ftruncate

#include <cerrno>   // errno
#include <cstring>  // std::memcpy
#include <new>      // placement new
#include <utility>  // std::exchange

#include "procpool/error.hpp"

namespace procpool {
namespace {

std::byte* map_shared(int fd, std::uint64_t size) {
  void* base = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (base == MAP_FAILED) {
    const int error = errno;
    throw_errno(error, "segment: mmap of " + std::to_string(size) + " bytes");
  }
  return static_cast<std::byte*>(base);
}

// Closes the fd if construction fails halfway.
struct FdGuard {
  int fd;
  ~FdGuard() {
    if (fd >= 0) ::close(fd);
  }
  int release() noexcept { return std::exchange(fd, -1); }
};

}  // namespace

Segment Segment::create(const SegmentConfig& config, std::uint64_t incarnation) {
  const SegmentHeader layout = make_segment_layout(config, incarnation);
  // CLOEXEC: the fd reaches exactly the worker the launcher hands it to, no other child.
  FdGuard fd{::memfd_create("procpool-segment", MFD_CLOEXEC | MFD_ALLOW_SEALING)};
  if (fd.fd < 0) throw_errno(errno, "segment: memfd_create");
  if (::fchmod(fd.fd, 0600) != 0) throw_errno(errno, "segment: fchmod 0600");
  if (::ftruncate(fd.fd, static_cast<off_t>(layout.total_size)) != 0) {
    const int error = errno;
    throw_errno(error, "segment: ftruncate to " + std::to_string(layout.total_size) + " bytes");
  }
  // After this no process holding the fd can change its size (a shrink would SIGBUS every
  // mapping) or remove the seals.
  if (::fcntl(fd.fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
    throw_errno(errno, "segment: sealing");
  }
  std::byte* base = map_shared(fd.fd, layout.total_size);
  // Fresh memfd pages are zero; construct the shared structs explicitly all the same, so their
  // initial values are those their declarations state.
  std::memcpy(base, &layout, sizeof layout);
  new (base + layout.control_offset) WorkerControl();
  new (base + layout.to_worker_ring_offset) RingData();
  new (base + layout.to_supervisor_ring_offset) RingData();
  return Segment(fd.release(), base, layout);
}

Segment Segment::attach(int raw_fd) {
  FdGuard fd{raw_fd};
  struct stat st {};
  if (::fstat(fd.fd, &st) != 0) {
    const int error = errno;
    throw_errno(error, "segment: fstat of fd " + std::to_string(raw_fd));
  }
  if (!S_ISREG(st.st_mode) || st.st_size < static_cast<off_t>(sizeof(SegmentHeader))) {
    throw Error("segment: fd " + std::to_string(raw_fd) + " is not a procpool segment");
  }
  const auto size = static_cast<std::uint64_t>(st.st_size);
  std::byte* base = map_shared(fd.fd, size);
  SegmentHeader layout{};
  std::memcpy(&layout, base, sizeof layout);  // read once; only the copy is used
  std::string problem = validate_segment_layout(layout, size);
  if (!problem.empty()) {
    ::munmap(base, size);
    throw Error("segment: fd " + std::to_string(raw_fd) + ": " + problem);
  }
  return Segment(fd.release(), base, layout);
}

Segment::Segment(Segment&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      base_(std::exchange(other.base_, nullptr)),
      layout_(other.layout_) {}

Segment& Segment::operator=(Segment&& other) noexcept {
  if (this != &other) {
    reset();
    fd_ = std::exchange(other.fd_, -1);
    base_ = std::exchange(other.base_, nullptr);
    layout_ = other.layout_;
  }
  return *this;
}

Segment::~Segment() { reset(); }

void Segment::reset() noexcept {
  if (base_ != nullptr) ::munmap(base_, layout_.total_size);
  if (fd_ >= 0) ::close(fd_);
  base_ = nullptr;
  fd_ = -1;
}

}  // namespace procpool
