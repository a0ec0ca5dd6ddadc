#pragma once

#include <array>          // pending tasks per priority
#include <chrono>         // std::chrono
#include <cstdint>        // fixed-width integers
#include <deque>          // pending tasks
#include <optional>       // the heartbeat, started last
#include <string>         // std::string
#include <string_view>    // std::string_view
#include <unordered_set>  // cancelled ids
#include <vector>         // handlers

#if defined(__x86_64__)
#include <x86intrin.h>  // __rdtsc
#endif

#include "heartbeat.hpp"
#include "procpool/chunk_format.hpp"
#include "procpool/frame_assembler.hpp"
#include "procpool/frame_writer.hpp"
#include "procpool/region_list.hpp"
#include "procpool/segment.hpp"
#include "procpool/shared_region.hpp"
#include "procpool/unique_fd.hpp"
#include "procpool/wire_format.hpp"
#include "procpool/worker.hpp"

namespace procpool::detail {

inline constexpr auto kChannelBound = std::chrono::seconds(10);
// The longest an idle worker sleeps for frames before it looks again (nothing needs it to: the
// supervisor's frames and the stop signals wake it).
inline constexpr auto kIdleWaitBound = std::chrono::hours(1);
// Answers are published in batches while more tasks wait: at most kMaxUnflushedResults, none
// held past kSlowTicks, and never held while a handler runs that was slow on its last run (or has
// not run yet), so a slow task does not hold back the answers before it.
inline constexpr std::uint32_t kMaxUnflushedResults = 32;

// A cheap clock for that heuristic, read once per task: the TSC on x86-64 (cheaper than a vDSO
// clock_gettime), nanoseconds elsewhere. kSlowTicks is about 40-50 µs.
#if defined(__x86_64__)
inline std::uint64_t ticks() noexcept { return __rdtsc(); }
inline constexpr std::uint64_t kSlowTicks = 120'000;  // cycles of a 2.4-3 GHz TSC
#else
inline std::uint64_t ticks() noexcept {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::steady_clock::now().time_since_epoch())
                                        .count());
}
inline constexpr std::uint64_t kSlowTicks = 50'000;  // ns
#endif

// Everything behind procpool::Worker: the channel to the supervisor (serve_loop.cpp: reading
// frames, publishing, waiting) and the serving of tasks (task_serving.cpp: handlers, chunks,
// answers).
class WorkerRuntime {
 public:
  WorkerRuntime(int argc, char** argv);

  void on(std::string name, Worker::Handler handler);
  std::string_view data() const noexcept { return data_; }
  std::span<std::byte> shared_memory() const noexcept { return shared_.bytes(); }
  std::span<std::byte> region(std::string_view name) const;
  int run();
  void reply(Task& task, std::string_view result);
  void emit(Task& task, std::string_view data);
  bool cancelled(std::uint64_t id) const noexcept {
    return segment_.control().cancel_task_id.load(std::memory_order_acquire) == id;
  }

 private:
  // A task read from the ring and not yet served. Its input is read in place in the ring (the
  // supervisor is trusted; its bytes stay ours until release_to(end)), except for a payload that
  // came in fragments, which was assembled into `owned`.
  struct Pending {
    std::uint64_t id = 0;
    std::uint32_t handler = 0;
    std::uint32_t attempt = 0;
    bool chunk = false;     // a chunk of items (kFrameChunk)
    bool progress = false;  // the submitter listens for its progress (kFrameProgress)
    unsigned rank = 1;      // frame_priority_rank: 0 High, 1 Normal, 2 Low
    // Tasks of a higher priority served before this one while it waited (next_task's bound).
    unsigned overtaken = 0;
    std::string_view input;
    std::string owned;
    std::uint64_t begin = 0;  // ring position of the task's (last) frame
    std::uint64_t end = 0;    // ring position after the task's last frame
  };
  // A waiting task overtaken this many times by higher priorities is served next, so a flood
  // of High tasks cannot keep a Low one in the worker forever (as TaskQueue::kMaxBypass does in
  // the pool's queue).
  static constexpr unsigned kMaxOvertaken = 8;

  // serve_loop.cpp
  void read_init();
  bool wait_for_frames(bool spin);
  bool read_frames();
  bool accept_task(const FrameHeader& header, std::span<const std::byte> payload,
                   std::uint64_t begin);
  std::size_t next_task() noexcept;
  void flush();
  void ring_doorbell() const noexcept;
  bool protocol_error(std::string_view what);

  // task_serving.cpp
  bool serve(Pending& pending);
  template <class Fail>
  void invoke(std::uint32_t handler, Task& task, Fail&& fail);
  bool serve_chunk(Pending& pending);
  bool send_error(std::uint64_t id, WorkerErrorCode code, std::string_view message);
  // A handler's failure with the type it threw and its code (kFrameErrorDetail).
  bool send_error(std::uint64_t id, const ErrorDetail& detail);
  bool send(FrameType type, std::uint64_t task_id, std::string_view payload,
            std::uint16_t flags = 0);

  std::string program_;
  Segment segment_;
  RingReader in_;
  RingWriter out_;
  UniqueFd doorbell_;
  SharedRegion shared_;
  NamedRegions regions_;  // the pool's named regions
  std::uint64_t max_payload_ = 0;
  std::string data_;
  std::vector<std::string> names_;
  std::vector<Worker::Handler> handlers_;
  // Per handler: its last run took less than kSlowTicks (answers may wait for it).
  std::vector<char> fast_;
  std::deque<Pending> pending_;
  std::array<std::size_t, 3> pending_by_rank_{};  // pending_'s tasks per priority rank
  FrameAssembler tasks_in_;
  FrameWriter frames_out_;
  std::unordered_set<std::uint64_t> cancelled_;
  // While a chunk is served: where Task::reply() puts each item's answer.
  ChunkWriter* chunk_ = nullptr;
  std::string chunk_out_;
  bool running_ = false;
  bool shutdown_ = false;
  bool broken_ = false;
  std::optional<Heartbeat> heartbeat_;  // last: it reads segment_
};

}  // namespace procpool::detail
