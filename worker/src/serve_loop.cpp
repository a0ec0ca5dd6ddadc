// The worker's side of the channel: attaching, the serving loop, reading and assembling frames,
// publishing answers and waiting for work.
#include <sys/eventfd.h>  // eventfd_write
#include <unistd.h>       // getpid

#include <cstdio>   // std::fprintf
#include <cstdlib>  // std::getenv

#include "process_setup.hpp"
#include "procpool/error.hpp"
#include "procpool/region_list.hpp"
#include "procpool/wait_strategy.hpp"
#include "procpool/worker_environment.hpp"
#include "worker_runtime.hpp"

namespace procpool::detail {
namespace {

Segment attach_segment(const char* program) {
  UniqueFd fd = inherited_fd(program, kSegmentFdEnv);
  try {
    return Segment::attach(fd.release());
  } catch (const Error& e) {
    die(program, e.what());
  }
}

// The pool's shared memory, if it has one (PROCPOOL_SHARED_FD).
SharedRegion attach_shared(const char* program) {
  if (std::getenv(kSharedFdEnv) == nullptr) return {};
  UniqueFd fd = inherited_fd(program, kSharedFdEnv);
  try {
    return SharedRegion::attach(fd.release());
  } catch (const Error& e) {
    die(program, e.what());
  }
}

// The pool's named regions, if it has any (PROCPOOL_REGIONS).
NamedRegions attach_regions(const char* program) {
  NamedRegions regions;
  const char* list = std::getenv(kRegionsEnv);
  if (list == nullptr) return regions;
  RegionFds fds;
  if (!decode_region_list(list, fds)) die(program, "malformed PROCPOOL_REGIONS");
  for (auto& [name, fd] : fds) {
    try {
      regions.emplace_back(std::move(name), SharedRegion::attach(fd));
    } catch (const Error& e) {
      die(program, e.what());
    }
  }
  return regions;
}

}  // namespace

WorkerRuntime::WorkerRuntime(int argc, char** argv)
    : program_(argc > 0 && argv[0] != nullptr ? argv[0] : "worker"),
      segment_(attach_segment(program_.c_str())),
      in_(segment_.worker_reader()),
      out_(segment_.worker_writer()),
      doorbell_(inherited_fd(program_.c_str(), kDoorbellFdEnv)),
      shared_(attach_shared(program_.c_str())),
      regions_(attach_regions(program_.c_str())) {
  segment_.control().heartbeat_ms.store(monotonic_ms(), std::memory_order_relaxed);
  read_init();
  follow_supervisor();
  install_stop_handlers();
}

int WorkerRuntime::run() {
  running_ = true;
  fast_.assign(handlers_.size(), 0);
  // The heartbeat thread starts once READY is out, so that its creation overlaps the
  // supervisor's handling of READY instead of delaying it (every start and restart waits for
  // READY). The supervisor looks at heartbeats only of workers with tasks on board, which this
  // one cannot have before READY; the beat stored here covers the moment until the thread's
  // first.
  segment_.control().heartbeat_ms.store(monotonic_ms(), std::memory_order_relaxed);
  if (!send(FrameType::kReady, 0, encode_handler_names(names_))) return 3;
  flush();
  heartbeat_.emplace(segment_.control(),
                     std::chrono::milliseconds(segment_.layout().heartbeat_interval_ms));
  std::uint32_t unflushed = 0;
  std::uint64_t batch_start = 0;  // ticks() when the oldest unpublished answer was written
  std::uint64_t last = ticks();   // ticks() when the previous task ended (or work arrived)
  bool quiet = false;             // the last wait for frames timed out
  while (!stop_signalled() && !shutdown_) {
    if (pending_.empty()) {
      if (!read_frames()) return 3;
      if (pending_.empty()) {
        flush();
        unflushed = 0;
        // After a wait that timed out the next one sleeps at once, without spinning first.
        if (!shutdown_) quiet = !wait_for_frames(/*spin=*/!quiet);
        last = ticks();
        continue;
      }
    }
    // Frames that came while the last task ran: a higher priority among them goes first.
    if (in_.poll() && !read_frames()) return 3;
    const std::size_t next = next_task();
    Pending task = std::move(pending_[next]);
    pending_.erase(pending_.begin() + static_cast<std::ptrdiff_t>(next));
    --pending_by_rank_[task.rank];
    if (!task.owned.empty()) task.input = task.owned;  // the move kept the buffer; be exact
    // Publish answers in batches while more work is already here; at once otherwise, so a
    // lone task's latency is not traded for throughput.
    const std::uint32_t handler = task.handler;
    const bool known_fast = handler < fast_.size() && fast_[handler] != 0;
    if (unflushed != 0 && (!known_fast || last - batch_start >= kSlowTicks)) {
      flush();
      unflushed = 0;
    }
    if (!serve(task)) return 3;
    const std::uint64_t finished = ticks();
    if (handler < fast_.size()) fast_[handler] = finished - last < kSlowTicks;
    last = finished;
    tasks_in_.recycle(std::move(task.owned));
    // The ring's bytes go back up to the first task still waiting (tasks served out of order
    // keep theirs until the ones before them are served too).
    if (in_.release_to(pending_.empty() ? task.end : pending_.front().begin)) ring_doorbell();
    if (unflushed++ == 0) batch_start = finished;
    if (unflushed >= kMaxUnflushedResults || (pending_.empty() && !in_.poll())) {
      flush();
      unflushed = 0;
    }
  }
  flush();
  return 0;
}

// The first frame is kInit: the pool's limits and worker data.
void WorkerRuntime::read_init() {
  const auto deadline = std::chrono::steady_clock::now() + kChannelBound;
  std::span<const std::byte> record;
  for (;;) {
    const ReadStatus status = in_.try_read(record);
    if (status == ReadStatus::kOk) break;
    if (status == ReadStatus::kCorrupt || std::chrono::steady_clock::now() >= deadline) {
      die(program_.c_str(), "no init frame from the supervisor");
    }
    wait_until(
        segment_.to_worker().readable, [&] { return in_.poll(); }, WaitPolicy{}, kChannelBound);
  }
  FrameHeader header;
  std::span<const std::byte> payload;
  std::string_view data;
  if (decode_frame(record, header, payload) != DecodeStatus::kOk ||
      header.type != FrameType::kInit || !decode_init(payload, max_payload_, data)) {
    die(program_.c_str(), "malformed init frame from the supervisor");
  }
  data_.assign(data);
  tasks_in_.set_max_payload(max_payload_);
  in_.release();
}

// Waits for frames (or SIGTERM, which interrupts the sleep: only this thread takes it),
// spinning first if `spin`; true if they came. Idle, the worker sleeps here and nowhere else:
// the heartbeat thread sleeps with it, and the supervisor's frames or a signal wake it. The
// bound only keeps a wait from being endless.
bool WorkerRuntime::wait_for_frames(bool spin) {
  WaitPolicy policy;
  if (!spin) policy.spin = std::chrono::nanoseconds(0);
  heartbeat_->idle();
  const WaitResult result = wait_until(
      segment_.to_worker().readable, [&] { return in_.poll() || stop_signalled(); }, policy,
      kIdleWaitBound);
  heartbeat_->awake();
  return result == WaitResult::kReady;
}

// Moves every complete task in the ring into pending_ and hands the ring's bytes back as far as
// no pending task still reads them. Returns false on a protocol violation.
bool WorkerRuntime::read_frames() {
  std::span<const std::byte> record;
  ReadStatus status;
  for (std::uint64_t begin = in_.position(); (status = in_.try_read(record)) == ReadStatus::kOk;
       begin = in_.position()) {
    FrameHeader header;
    std::span<const std::byte> payload;
    const DecodeStatus decoded = decode_frame(record, header, payload);
    if (decoded != DecodeStatus::kOk) return protocol_error(to_string(decoded));
    switch (header.type) {
      case FrameType::kTask:
        if (!accept_task(header, payload, begin)) return false;
        // A fragment is copied out by now: with no task before it read in place, its bytes go
        // back at once, so the supervisor writes the next fragment while this one is copied.
        if (tasks_in_.assembling() && pending_.empty() && in_.release()) ring_doorbell();
        break;
      case FrameType::kCancel:
        cancelled_.insert(header.task_id);
        break;
      case FrameType::kShutdown:
        shutdown_ = true;
        break;
      default:
        return protocol_error("unexpected frame type");
    }
  }
  // With no task left to serve, hand everything back; otherwise bytes go back task by task.
  // (Fragments of a task being assembled were copied out: their bytes can go back too.)
  if (pending_.empty() && in_.release()) ring_doorbell();
  if (status == ReadStatus::kCorrupt) return protocol_error(to_string(in_.fault()));
  return true;
}

bool WorkerRuntime::accept_task(const FrameHeader& header, std::span<const std::byte> payload,
                                std::uint64_t begin) {
  const AssemblyStatus status = tasks_in_.add(header, payload);
  if (status == AssemblyStatus::kIncomplete) return true;
  if (status != AssemblyStatus::kComplete) return protocol_error(to_string(status));
  const FrameHeader& whole = tasks_in_.header();
  Pending& task = pending_.emplace_back();
  task.id = whole.task_id;
  task.handler = whole.handler_id;
  task.attempt = whole.attempt;
  task.chunk = (whole.flags & kFrameChunk) != 0;
  task.progress = (whole.flags & kFrameProgress) != 0;
  task.rank = frame_priority_rank(whole.flags);
  task.begin = begin;
  ++pending_by_rank_[task.rank];
  if (tasks_in_.in_place()) {
    task.input = tasks_in_.text();
  } else {
    task.owned = tasks_in_.take();  // the deque never moves it: the view stays valid
    task.input = task.owned;
  }
  task.end = in_.position();
  return true;
}

// The pending task to serve next: the oldest of the highest priority waiting, unless an older
// one has been overtaken kMaxOvertaken times already (then the oldest such). Each task of a
// lower priority passed over counts one more overtaking.
std::size_t WorkerRuntime::next_task() noexcept {
  if (pending_by_rank_[pending_.front().rank] == pending_.size()) return 0;  // one priority
  std::size_t best = 0;
  for (std::size_t i = 0; i < pending_.size() && pending_[best].rank != 0; ++i) {
    if (pending_[i].overtaken >= kMaxOvertaken) {
      best = i;
      break;
    }
    if (pending_[i].rank < pending_[best].rank) best = i;
  }
  for (std::size_t i = 0; i < best; ++i) {
    if (pending_[i].rank > pending_[best].rank) ++pending_[i].overtaken;
  }
  return best;
}

void WorkerRuntime::flush() {
  if (out_.publish()) ring_doorbell();
}

void WorkerRuntime::ring_doorbell() const noexcept { ::eventfd_write(doorbell_.get(), 1); }

bool WorkerRuntime::protocol_error(std::string_view what) {
  std::fprintf(stderr, "%s: procpool worker: protocol error from the supervisor: %.*s\n",
               program_.c_str(), static_cast<int>(what.size()), what.data());
  return false;
}

}  // namespace procpool::detail
