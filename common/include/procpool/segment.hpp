#pragma once
#include "procpool/detail/require_cxx20.hpp"

#include <cstddef>  // std::byte
#include <cstdint>  // std::uint64_t
#include <span>     // std::span

#include "procpool/ring_data.hpp"
#include "procpool/ring_reader.hpp"
#include "procpool/ring_writer.hpp"
#include "procpool/segment_layout.hpp"
#include "procpool/worker_control.hpp"

namespace procpool {

// The shared memory one supervisor and one worker share: header, control block and the two rings
// (see SegmentHeader for the layout).
//
// It is a sealed memfd, not a named /dev/shm object (docs/architecture.md has the why):
//   - nothing has a name, so nothing is left behind when any process, the supervisor included,
//     dies: the kernel frees the memory with the last fd or mapping;
//   - F_SEAL_SHRINK|F_SEAL_GROW|F_SEAL_SEAL: a worker holding the fd cannot ftruncate it and make
//     the supervisor die of SIGBUS on its next access;
//   - mode 0600 and close-on-exec: only the worker it is deliberately passed to gets the fd.
// The supervisor creates it; the worker inherits the fd across exec and attaches.
class Segment {
 public:
  // Creates, sizes, seals and maps a new segment and writes its header and empty rings.
  // Throws procpool::Error on a bad config or a failed system call.
  static Segment create(const SegmentConfig& config, std::uint64_t incarnation);

  // Maps the segment behind `fd` (a worker's inherited fd) and validates its header against the
  // fd's size. Takes ownership of `fd`. Throws procpool::Error if it is not a valid segment.
  static Segment attach(int fd);

  Segment(Segment&& other) noexcept;
  Segment& operator=(Segment&& other) noexcept;
  Segment(const Segment&) = delete;
  Segment& operator=(const Segment&) = delete;
  ~Segment();

  int fd() const noexcept { return fd_; }
  std::uint64_t size() const noexcept { return layout_.total_size; }
  // This process's own copy of the layout (the creator's, or the attacher's validated copy).
  const SegmentHeader& layout() const noexcept { return layout_; }

  WorkerControl& control() const noexcept { return *at<WorkerControl>(layout_.control_offset); }
  RingData& to_worker() const noexcept { return *at<RingData>(layout_.to_worker_ring_offset); }
  RingData& to_supervisor() const noexcept {
    return *at<RingData>(layout_.to_supervisor_ring_offset);
  }
  std::span<std::byte> to_worker_bytes() const noexcept {
    return {base_ + layout_.to_worker_bytes_offset, layout_.to_worker_capacity};
  }
  std::span<std::byte> to_supervisor_bytes() const noexcept {
    return {base_ + layout_.to_supervisor_bytes_offset, layout_.to_supervisor_capacity};
  }

  // The four ring views, one per role.
  RingWriter supervisor_writer() const noexcept { return {to_worker(), to_worker_bytes()}; }
  RingReader supervisor_reader() const noexcept { return {to_supervisor(), to_supervisor_bytes()}; }
  RingReader worker_reader() const noexcept { return {to_worker(), to_worker_bytes()}; }
  RingWriter worker_writer() const noexcept { return {to_supervisor(), to_supervisor_bytes()}; }

 private:
  Segment(int fd, std::byte* base, const SegmentHeader& layout) noexcept
      : fd_(fd), base_(base), layout_(layout) {}
  template <class T>
  T* at(std::uint64_t offset) const noexcept {
    return reinterpret_cast<T*>(base_ + offset);
  }
  void reset() noexcept;

  int fd_ = -1;
  std::byte* base_ = nullptr;
  SegmentHeader layout_{};
};

}  // namespace procpool
