#include "procpool/segment.hpp"

#include <sys/mman.h>  // munmap
#include <sys/stat.h>  // fstat
#include <unistd.h>    // close

#include <cerrno>   // errno
#include <cstring>  // std::memcpy
#include <new>      // placement new
#include <string>   // std::to_string
#include <utility>  // std::exchange

#include "procpool/detail/memfd.hpp"
#include "procpool/error.hpp"
#include "procpool/unique_fd.hpp"

namespace procpool {

Segment Segment::create(const SegmentConfig& config, std::uint64_t incarnation) {
  const SegmentHeader layout = make_segment_layout(config, incarnation);
  UniqueFd fd{detail::create_sealed_memfd("procpool-segment", layout.total_size, "segment")};
  std::byte* base = detail::map_shared(fd.get(), layout.total_size, "segment");
  // Fresh memfd pages are zero; construct the shared structs explicitly all the same, so their
  // initial values are those their declarations state.
  std::memcpy(base, &layout, sizeof layout);
  new (base + layout.control_offset) WorkerControl();
  new (base + layout.to_worker_ring_offset) RingData();
  new (base + layout.to_supervisor_ring_offset) RingData();
  return Segment(fd.release(), base, layout);
}

Segment Segment::attach(int raw_fd) {
  UniqueFd fd{raw_fd};
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) {
    const int error = errno;
    throw_errno(error, "segment: fstat of fd " + std::to_string(raw_fd));
  }
  if (!S_ISREG(st.st_mode) || st.st_size < static_cast<off_t>(sizeof(SegmentHeader))) {
    throw Error("segment: fd " + std::to_string(raw_fd) + " is not a procpool segment");
  }
  const auto size = static_cast<std::uint64_t>(st.st_size);
  std::byte* base = detail::map_shared(fd.get(), size, "segment");
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
