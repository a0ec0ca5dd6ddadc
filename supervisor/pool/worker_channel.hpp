#pragma once

#include <cstddef>      // std::byte
#include <cstdint>      // fixed-width integers
#include <span>         // payloads
#include <string>       // taken answers
#include <string_view>  // fault details

#include "procpool/event_count.hpp"
#include "procpool/frame_assembler.hpp"
#include "procpool/frame_writer.hpp"
#include "procpool/protocol_violation.hpp"
#include "procpool/ring_reader.hpp"
#include "procpool/ring_writer.hpp"
#include "procpool/segment.hpp"
#include "procpool/unique_fd.hpp"
#include "procpool/wire_format.hpp"
#include "procpool/worker_control.hpp"

namespace procpool::detail {

// What the channel found wrong with what a worker wrote: the rule it broke, and a fixed text
// naming what exactly (no allocation on the path that finds it).
struct ChannelFault {
  ProtocolViolation violation = ProtocolViolation::None;
  std::string_view detail;
};

// One worker's end of the protocol, as the supervisor sees it (docs/protocol.md): the worker's
// segment, the ring to it with the task being written into it (in fragments when it does not
// fit, resumed as the worker makes room), the ring from it with the answer being reassembled,
// and its doorbell eventfd with the count of its rings. It checks everything the worker wrote
// against the framing and its limits (frame_limits.hpp) and reports a violation as a
// ChannelFault; what an answer means for a task is the pool's to check.
//
// Exists while a worker runs (WorkerSlot::channel); owned and used under PoolCore's mutex. Not
// movable: the ring views point into the segment it maps.
class WorkerChannel {
 public:
  static constexpr std::uint32_t kNoTask = ~std::uint32_t{0};

  // Creates the segment and the doorbell, and publishes kInit (the pool's max_payload, which
  // also bounds every answer, and the worker data). Throws SystemError or Error.
  WorkerChannel(const SegmentConfig& config, std::uint64_t incarnation, std::uint64_t max_payload,
                std::string_view worker_data);
  WorkerChannel(const WorkerChannel&) = delete;
  WorkerChannel& operator=(const WorkerChannel&) = delete;

  // The fds the worker inherits.
  int segment_fd() const noexcept { return segment_.fd(); }
  int doorbell_fd() const noexcept { return doorbell_.get(); }
  WorkerControl& control() const noexcept { return segment_.control(); }

  // --- To the worker. ---
  enum class WriteOutcome : std::uint8_t {
    kDone,   // the whole task is committed; the channel takes another
    kFull,   // part of it waits for ring room (continue with write_task once writable())
    kFault,  // the worker corrupted the ring: fault() says how; the task is dropped
  };
  // Starts writing task record `task` with `header` (type kTask; kFrameChunk for a chunk).
  // Only while writing_task() is kNoTask.
  void begin_task(std::uint32_t task, const FrameHeader& header) noexcept;
  // Writes (more of) the task begun: pass the same payload bytes every time. Committed, not
  // published (publish()).
  WriteOutcome write_task(std::span<const std::byte> payload) noexcept;
  // The task record whose payload is partly written, or kNoTask.
  std::uint32_t writing_task() const noexcept { return writing_; }
  // True when the next fragment of the task being written fits the ring now.
  bool writable(std::span<const std::byte> payload) noexcept;
  // A frame without a payload the worker acts on (shutdown, cancel). Not written while a task
  // is partly written: its fragments must stay consecutive. False if not written.
  bool send_control(FrameType type, std::uint64_t task_id) noexcept;
  void publish() noexcept { to_worker_.publish(); }

  // --- From the worker. ---
  enum class ReadOutcome : std::uint8_t {
    kFrame,  // `frame` is a whole frame: a complete answer (kResult, kError) or any other type
    kEmpty,  // nothing more until the worker publishes; call release()
    kFault,  // the worker broke the protocol: fault() says how; stop reading
  };
  struct Frame {
    // For an answer, the first fragment's header (without kFrameMore); payload_size is clamped.
    FrameHeader header;
    // An answer's payload is the channel's copy (never the ring: the worker could change it
    // while it is checked), valid until the next read() or take_answer(); any other frame's
    // points into the ring until the next read() or release().
    std::span<const std::byte> payload;
  };
  ReadOutcome read(Frame& frame);
  // Hands the bytes read back to the worker.
  void release() noexcept { from_worker_.release(); }
  // The answer read last, moved out (for a caller that keeps it: the result it delivers).
  std::string take_answer() { return assembler_.take(); }
  // True if the worker published something not read yet (or corrupted the ring).
  bool readable() noexcept { return from_worker_.poll(); }

  // What a waiting supervisor announces it sleeps on (EventCount): the worker's publishes, and
  // its releases while a task waits for room.
  EventCount& published_event() const noexcept { return segment_.to_supervisor().readable; }
  EventCount& released_event() const noexcept { return segment_.to_worker().writable; }

  // --- The doorbell. ---
  // Counts the rings since the last call; false if none were pending.
  bool take_rings() noexcept;
  // Checks the count against the ring traffic (call after reading what the worker published,
  // so that it counts): the SDK rings at most once per published or released frame record,
  // plus slack (docs/design-rules.md §18). kDoorbellFlood beyond that; kRingCorruption if the
  // worker's read position in the ring to it is impossible. None otherwise.
  ChannelFault check_doorbell() noexcept;
  std::uint64_t rings() const noexcept { return rings_; }
  // Bytes the worker published to us plus bytes it handed back to us.
  std::uint64_t traffic() const noexcept;
  static constexpr std::uint64_t kDoorbellSlack = 1024;

  const ChannelFault& fault() const noexcept { return fault_; }

 private:
  ReadOutcome fail(ProtocolViolation violation, std::string_view detail) noexcept;

  Segment segment_;
  RingWriter to_worker_;
  RingReader from_worker_;
  FrameWriter task_writer_;
  std::uint32_t writing_ = kNoTask;
  FrameAssembler assembler_;
  UniqueFd doorbell_;
  std::uint64_t rings_ = 0;
  ChannelFault fault_;
};

}  // namespace procpool::detail
