#include "procpool/worker.hpp"

#include <signal.h>       // sigaction, SIGTERM
#include <sys/eventfd.h>  // eventfd_write
#include <sys/prctl.h>    // prctl, PR_SET_PDEATHSIG
#include <unistd.h>       // getpid, getpgrp

#include <atomic>              // std::atomic
#include <chrono>              // heartbeat interval
#include <condition_variable>  // heartbeat thread
#include <cstdio>              // std::fprintf
#include <cstdlib>             // std::getenv, std::exit
#include <cstring>             // std::strrchr
#include <deque>               // pending tasks
#include <mutex>               // heartbeat thread
#include <new>                 // std::bad_alloc
#include <thread>              // heartbeat thread
#include <unordered_set>       // cancelled ids
#include <vector>              // handlers

#if defined(__x86_64__)
#include <x86intrin.h>  // __rdtsc
#endif

#include "procpool/chunk_format.hpp"
#include "procpool/error.hpp"
#include "procpool/segment.hpp"
#include "procpool/shared_region.hpp"
#include "procpool/wait_strategy.hpp"
#include "procpool/wire_format.hpp"
#include "procpool/worker_environment.hpp"

namespace procpool {
namespace detail {
namespace {

// Set by SIGTERM; read by the serving loop between tasks. A lock-free atomic is
// async-signal-safe to store.
std::atomic<bool> g_stop_signal{false};
static_assert(std::atomic<bool>::is_always_lock_free);

extern "C" void on_stop_signal(int) { g_stop_signal.store(true, std::memory_order_relaxed); }

// The supervisor died: take the worker's process group with it, the worker and any children it
// started (PDEATHSIG alone does not reach grandchildren, docs/design-rules.md §11). Only a group
// the worker leads (the launcher makes it so); otherwise only the worker itself.
extern "C" void on_supervisor_death(int) {
  ::kill(::getpgrp() == ::getpid() ? 0 : ::getpid(), SIGKILL);
}

// The launcher armed PDEATHSIG = SIGKILL before exec; re-arm it as SIGHUP ("the controlling
// process is gone"), whose handler kills the group. prctl replaces the signal atomically: a
// supervisor dying before this line already SIGKILLed the worker, which had no children yet.
void follow_supervisor() {
  struct sigaction action {};
  action.sa_handler = on_supervisor_death;
  sigemptyset(&action.sa_mask);
  action.sa_flags = 0;
  ::sigaction(SIGHUP, &action, nullptr);
  ::prctl(PR_SET_PDEATHSIG, SIGHUP, 0, 0, 0);
}

std::uint64_t monotonic_ms() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                        std::chrono::steady_clock::now().time_since_epoch())
                                        .count());
}

[[noreturn]] void die(const char* program, const std::string& message) {
  std::fprintf(stderr, "%s: procpool worker: %s\n", program, message.c_str());
  std::exit(2);
}

int parse_fd(const char* program, const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr) {
    die(program, std::string("not started by a procpool supervisor (") + name +
                     " is not set); run it through procpool::Pool or `procpool map -- " + program +
                     "`");
  }
  char* end = nullptr;
  const long fd = std::strtol(value, &end, 10);
  if (end == value || *end != '\0' || fd < 0 || fd > 1'000'000) {
    die(program, std::string(name) + "='" + value + "' is not a file descriptor");
  }
  return static_cast<int>(fd);
}

constexpr auto kChannelBound = std::chrono::seconds(10);
// Answers are published in batches while more tasks wait: at most kMaxUnflushedResults, none
// held past kSlowTicks, and never held while a handler runs that was slow on its last run (or has
// not run yet), so a slow task does not hold back the answers before it.
constexpr std::uint32_t kMaxUnflushedResults = 32;

// A cheap clock for that heuristic, read once per task: the TSC on x86-64 (about 10 ns here, a
// vDSO clock_gettime costs about 26), nanoseconds elsewhere. kSlowTicks is about 40-50 µs.
#if defined(__x86_64__)
inline std::uint64_t ticks() noexcept { return __rdtsc(); }
constexpr std::uint64_t kSlowTicks = 120'000;  // cycles of a 2.4-3 GHz TSC
#else
inline std::uint64_t ticks() noexcept {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::steady_clock::now().time_since_epoch())
                                        .count());
}
constexpr std::uint64_t kSlowTicks = 50'000;  // ns
#endif

}  // namespace

// Everything behind procpool::Worker: the channel to the supervisor and the serving loop.
class WorkerRuntime {
 public:
  WorkerRuntime(int argc, char** argv)
      : program_(argc > 0 && argv[0] != nullptr ? argv[0] : "worker"),
        segment_(attach(program_.c_str())),
        in_(segment_.worker_reader()),
        out_(segment_.worker_writer()),
        doorbell_fd_(parse_fd(program_.c_str(), kDoorbellFdEnv)),
        shared_(attach_shared(program_.c_str())) {
    WorkerControl& control = segment_.control();
    control.pid.store(static_cast<std::uint32_t>(::getpid()), std::memory_order_relaxed);
    control.heartbeat_ms.store(monotonic_ms(), std::memory_order_relaxed);
    control.state.store(static_cast<std::uint32_t>(WorkerState::kStarting),
                        std::memory_order_release);
    read_init();
    follow_supervisor();
    struct sigaction action {};
    action.sa_handler = on_stop_signal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = 0;  // no SA_RESTART: a sleeping wait returns and sees the flag
    ::sigaction(SIGTERM, &action, nullptr);
    ::sigaction(SIGINT, &action, nullptr);
    heartbeat_ = std::thread([this] { beat(); });
  }

  ~WorkerRuntime() {
    {
      std::lock_guard lock(heartbeat_mutex_);
      heartbeat_stop_ = true;
    }
    heartbeat_wake_.notify_all();
    if (heartbeat_.joinable()) heartbeat_.join();
  }

  void on(std::string name, Worker::Handler handler) {
    if (running_) throw Error("Worker::on(\"" + name + "\"): register handlers before run()");
    if (name.empty() || name.size() > kMaxHandlerName) {
      throw Error("Worker::on: handler names are 1.." + std::to_string(kMaxHandlerName) + " bytes");
    }
    for (const std::string& existing : names_) {
      if (existing == name) throw Error("Worker::on: handler \"" + name + "\" registered twice");
    }
    if (names_.size() == kMaxHandlers) throw Error("Worker::on: too many handlers");
    if (!handler) throw Error("Worker::on(\"" + name + "\"): empty handler");
    names_.push_back(std::move(name));
    handlers_.push_back(std::move(handler));
  }

  std::string_view data() const noexcept { return data_; }
  std::span<std::byte> shared_memory() const noexcept { return shared_.bytes(); }

  int run() {
    running_ = true;
    fast_.assign(handlers_.size(), 0);
    if (!send(FrameType::kReady, 0, encode_handler_names(names_))) return 3;
    flush();
    set_state(WorkerState::kReady);
    std::uint32_t unflushed = 0;
    std::uint64_t batch_start = 0;  // ticks() when the oldest unpublished answer was written
    std::uint64_t last = ticks();   // ticks() when the previous task ended (or work arrived)
    bool quiet = false;             // the last wait for frames timed out
    while (!g_stop_signal.load(std::memory_order_relaxed) && !shutdown_) {
      if (pending_.empty()) {
        if (!read_frames()) return 3;
        if (pending_.empty()) {
          flush();
          unflushed = 0;
          // After a wait that timed out (nothing came for a heartbeat interval) the next one
          // sleeps at once: an idle worker wakes once per interval and does not spin each time.
          if (!shutdown_) quiet = !wait_for_frames(/*spin=*/!quiet);
          last = ticks();
          continue;
        }
      }
      Pending& task = pending_.front();
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
      const std::uint64_t end = task.end;
      recycle(std::move(task.owned));
      pending_.pop_front();
      if (in_.release_to(end)) ring_doorbell();
      if (unflushed++ == 0) batch_start = finished;
      if (unflushed >= kMaxUnflushedResults || (pending_.empty() && !in_.poll())) {
        flush();
        unflushed = 0;
      }
    }
    flush();
    set_state(WorkerState::kStopped);
    return 0;
  }

  void reply(Task& task, std::string_view result) {
    if (task.replied_)
      throw Error("Task::reply: task " + std::to_string(task.id_) + " replied twice");
    task.replied_ = true;
    if (chunk_ != nullptr) {  // one item of a chunk: its answer joins the chunk's
      if (result.size() > max_payload_) {
        chunk_->add_result(static_cast<std::uint32_t>(WorkerErrorCode::kPayloadTooLarge),
                           "result of " + std::to_string(result.size()) +
                               " bytes exceeds max_payload " + std::to_string(max_payload_));
      } else {
        chunk_->add_result(0, result);
      }
      return;
    }
    if (result.size() > max_payload_) {
      send_error(task.id_, WorkerErrorCode::kPayloadTooLarge,
                 "result of " + std::to_string(result.size()) + " bytes exceeds max_payload " +
                     std::to_string(max_payload_));
      return;
    }
    if (!send(FrameType::kResult, task.id_, result)) broken_ = true;
  }

  bool cancelled(std::uint64_t id) const noexcept {
    return segment_.control().cancel_task_id.load(std::memory_order_acquire) == id;
  }

 private:
  // A task read from the ring and not yet served. Its input is read in place in the ring (the
  // supervisor is trusted; its bytes stay ours until release_to(end)), except for a payload that
  // came in fragments, which is assembled into `owned`.
  struct Pending {
    std::uint64_t id = 0;
    std::uint32_t handler = 0;
    std::uint32_t attempt = 0;
    bool chunk = false;  // a chunk of items (kFrameChunk)
    std::string_view input;
    std::string owned;
    std::uint64_t end = 0;  // ring position after the task's last frame
  };

  static Segment attach(const char* program) {
    const int fd = parse_fd(program, kSegmentFdEnv);
    try {
      return Segment::attach(fd);
    } catch (const Error& e) {
      die(program, e.what());
    }
  }

  // The pool's shared memory, if it has one (PROCPOOL_SHARED_FD).
  static SharedRegion attach_shared(const char* program) {
    if (std::getenv(kSharedFdEnv) == nullptr) return {};
    const int fd = parse_fd(program, kSharedFdEnv);
    try {
      return SharedRegion::attach(fd);
    } catch (const Error& e) {
      die(program, e.what());
    }
  }

  void set_state(WorkerState state) {
    segment_.control().state.store(static_cast<std::uint32_t>(state), std::memory_order_release);
  }

  // The first frame is kInit: the pool's limits and worker data.
  void read_init() {
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
    in_.release();
  }

  void beat() {
    const auto interval = std::chrono::milliseconds(segment_.layout().heartbeat_interval_ms);
    std::unique_lock lock(heartbeat_mutex_);
    while (!heartbeat_stop_) {
      segment_.control().heartbeat_ms.store(monotonic_ms(), std::memory_order_relaxed);
      heartbeat_wake_.wait_for(lock, interval);
    }
  }

  // Waits up to a heartbeat interval for frames (or SIGTERM), spinning first if `spin`; true if
  // they came.
  bool wait_for_frames(bool spin) {
    WaitPolicy policy;
    if (!spin) policy.spin = std::chrono::nanoseconds(0);
    return wait_until(
               segment_.to_worker().readable,
               [&] { return in_.poll() || g_stop_signal.load(std::memory_order_relaxed); }, policy,
               std::chrono::milliseconds(segment_.layout().heartbeat_interval_ms)) ==
           WaitResult::kReady;
  }

  // Moves every complete frame in the ring into pending_ (copying payloads out of shared
  // memory) and hands the ring's bytes back. Returns false on a protocol violation.
  bool read_frames() {
    std::span<const std::byte> record;
    ReadStatus status;
    while ((status = in_.try_read(record)) == ReadStatus::kOk) {
      FrameHeader header;
      std::span<const std::byte> payload;
      if (decode_frame(record, header, payload) != DecodeStatus::kOk)
        return protocol_error("bad frame");
      switch (header.type) {
        case FrameType::kTask:
          if (!assemble(header, payload)) return false;
          break;
        case FrameType::kCancel:
          cancelled_.insert(header.task_id);
          break;
        case FrameType::kShutdown:
          shutdown_ = true;
          break;
        case FrameType::kHeartbeat:
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

  bool assemble(const FrameHeader& header, std::span<const std::byte> payload) {
    const std::string_view bytes(reinterpret_cast<const char*>(payload.data()), payload.size());
    if (!assembling_ && (header.flags & kFrameMore) == 0) {  // the common case: one frame
      Pending& task = pending_.emplace_back();
      task.id = header.task_id;
      task.handler = header.handler_id;
      task.attempt = header.attempt;
      task.chunk = (header.flags & kFrameChunk) != 0;
      task.input = bytes;
      task.end = in_.position();
      return true;
    }
    if (!assembling_) {
      current_.id = header.task_id;
      current_.handler = header.handler_id;
      current_.attempt = header.attempt;
      current_.chunk = (header.flags & kFrameChunk) != 0;
      current_.owned = take_buffer();
      assembling_ = true;
    } else if (header.task_id != current_.id) {
      return protocol_error("fragments of two tasks interleaved");
    } else if (current_.chunk != ((header.flags & kFrameChunk) != 0)) {
      return protocol_error("fragments of one task disagree on kFrameChunk");
    }
    if (current_.owned.size() + bytes.size() > max_payload_) {
      return protocol_error("task payload above max_payload");
    }
    current_.owned.append(bytes);
    if ((header.flags & kFrameMore) == 0) {
      assembling_ = false;
      Pending& task = pending_.emplace_back(std::move(current_));
      task.input = task.owned;
      task.end = in_.position();
      current_ = Pending();
    }
    return true;
  }

  bool serve(Pending& pending) {
    WorkerControl& control = segment_.control();
    if (cancelled_.erase(pending.id) != 0 || cancelled(pending.id)) {
      return send_error(pending.id, WorkerErrorCode::kCancelled, "cancelled before it started");
    }
    if (pending.handler >= handlers_.size()) {
      return send_error(pending.id, WorkerErrorCode::kUnknownHandler,
                        "no handler with id " + std::to_string(pending.handler));
    }
    if (pending.chunk) return serve_chunk(pending);
    Task task(*this, pending.id, pending.attempt, pending.input);
    bool failed = false;
    control.current_task_id.store(pending.id, std::memory_order_relaxed);
    invoke(pending.handler, task, [&](WorkerErrorCode code, std::string_view what) {
      failed = true;
      send_error(pending.id, code, what);
    });
    control.current_task_id.store(0, std::memory_order_relaxed);
    (failed ? control.tasks_failed : control.tasks_done).fetch_add(1, std::memory_order_relaxed);
    return !broken_;
  }

  // Runs handler `handler` on `task`: a handler that returns without replying answers with an
  // empty result; one that throws before replying ends in fail(code, message) (std::bad_alloc
  // as kMemoryLimit). Task::reply() sends, or adds to the chunk being served.
  template <class Fail>
  void invoke(std::uint32_t handler, Task& task, Fail&& fail) {
    try {
      handlers_[handler](task);
      if (!task.replied_) reply(task, {});
    } catch (const std::bad_alloc& e) {
      if (!task.replied_) fail(WorkerErrorCode::kMemoryLimit, e.what());
    } catch (const std::exception& e) {
      if (!task.replied_) fail(WorkerErrorCode::kHandlerFailed, e.what());
    } catch (...) {
      if (!task.replied_) fail(WorkerErrorCode::kHandlerFailed, "unknown exception");
    }
  }

  // A chunk: the handler runs once per item, in order; each item's answer or error goes into one
  // chunk result. The chunk stops early (and fails whole, as Cancelled) if it is cancelled.
  bool serve_chunk(Pending& pending) {
    WorkerControl& control = segment_.control();
    ChunkReader items(pending.input);
    // Validate the whole chunk first (the supervisor is trusted, but a bug must not run half).
    for (std::string_view item; items.next(item);) {
    }
    if (!items.complete()) return protocol_error("malformed chunk");
    ChunkWriter out(chunk_out_);
    out.begin();
    chunk_ = &out;
    control.current_task_id.store(pending.id, std::memory_order_relaxed);
    bool cancelled_midway = false;
    ChunkReader walk(pending.input);
    for (std::string_view item; walk.next(item);) {
      if ((out.count() & 63) == 63 && cancelled(pending.id)) {
        cancelled_midway = true;
        break;
      }
      Task task(*this, pending.id, pending.attempt, item);
      invoke(pending.handler, task, [&](WorkerErrorCode code, std::string_view what) {
        out.add_result(static_cast<std::uint32_t>(code), what);
      });
    }
    chunk_ = nullptr;
    control.current_task_id.store(0, std::memory_order_relaxed);
    control.tasks_done.fetch_add(out.count() - out.failures(), std::memory_order_relaxed);
    control.tasks_failed.fetch_add(out.failures(), std::memory_order_relaxed);
    if (cancelled_midway) {
      return send_error(pending.id, WorkerErrorCode::kCancelled, "cancelled while running");
    }
    if (out.size() > max_payload_) {
      return send_error(pending.id, WorkerErrorCode::kPayloadTooLarge,
                        "the chunk's results (" + std::to_string(out.size()) +
                            " bytes) exceed max_payload " + std::to_string(max_payload_));
    }
    if (!send(FrameType::kResult, pending.id, chunk_out_, kFrameChunk)) broken_ = true;
    if (chunk_out_.capacity() > 4 * 1024 * 1024) std::string().swap(chunk_out_);
    return !broken_;
  }

  bool send_error(std::uint64_t id, WorkerErrorCode code, std::string_view message) {
    if (!send(FrameType::kError, id, encode_error(code, message.substr(0, 64 * 1024)))) {
      broken_ = true;
    }
    return !broken_;
  }

  // Writes `payload` as one frame, or as fragments when it exceeds one record. Waits (bounded,
  // repeatedly) for room while the supervisor drains the ring.
  bool send(FrameType type, std::uint64_t task_id, std::string_view payload,
            std::uint16_t flags = 0) {
    const std::size_t chunk = out_.max_payload() - sizeof(FrameHeader);
    FrameHeader header;
    header.type = type;
    header.task_id = task_id;
    do {
      const std::size_t size = std::min(chunk, payload.size());
      header.flags = static_cast<std::uint16_t>(flags | (size < payload.size() ? kFrameMore : 0));
      for (;;) {
        const WriteStatus status = write_frame(out_, header, as_bytes(payload.substr(0, size)));
        if (status == WriteStatus::kOk) break;
        if (status != WriteStatus::kFull) return false;
        flush();
        const auto needed = static_cast<std::uint32_t>(size + sizeof(FrameHeader));
        const WaitResult waited = wait_until(
            segment_.to_supervisor().writable, [&] { return out_.can_reserve(needed); },
            WaitPolicy{}, kChannelBound);
        // A supervisor that has not drained for this long is gone or stuck; PDEATHSIG ends us
        // if it died, otherwise keep waiting: it kills us itself if we are in the way.
        (void)waited;
      }
      payload.remove_prefix(size);
    } while (!payload.empty());
    return true;
  }

  void flush() {
    if (out_.publish()) ring_doorbell();
  }

  void ring_doorbell() const noexcept { ::eventfd_write(doorbell_fd_, 1); }

  bool protocol_error(std::string_view what) {
    std::fprintf(stderr, "%s: procpool worker: protocol error from the supervisor: %.*s\n",
                 program_.c_str(), static_cast<int>(what.size()), what.data());
    return false;
  }

  std::string take_buffer() {
    if (free_buffers_.empty()) return {};
    std::string buffer = std::move(free_buffers_.back());
    free_buffers_.pop_back();
    buffer.clear();
    return buffer;
  }
  void recycle(std::string buffer) {
    if (free_buffers_.size() < 64 && buffer.capacity() <= 1024 * 1024) {
      free_buffers_.push_back(std::move(buffer));
    }
  }

  std::string program_;
  Segment segment_;
  RingReader in_;
  RingWriter out_;
  int doorbell_fd_;
  SharedRegion shared_;
  std::uint64_t max_payload_ = 0;
  std::string data_;
  std::vector<std::string> names_;
  std::vector<Worker::Handler> handlers_;
  // Per handler: its last run took less than kSlowTicks (answers may wait for it).
  std::vector<char> fast_;
  std::deque<Pending> pending_;
  Pending current_;
  bool assembling_ = false;
  std::unordered_set<std::uint64_t> cancelled_;
  // While a chunk is served: where Task::reply() puts each item's answer.
  ChunkWriter* chunk_ = nullptr;
  std::string chunk_out_;
  std::vector<std::string> free_buffers_;
  bool running_ = false;
  bool shutdown_ = false;
  bool broken_ = false;
  std::thread heartbeat_;
  std::mutex heartbeat_mutex_;
  std::condition_variable heartbeat_wake_;
  bool heartbeat_stop_ = false;
};

}  // namespace detail

void Task::reply(std::string_view result) { runtime_.reply(*this, result); }
bool Task::cancelled() const noexcept { return runtime_.cancelled(id_); }

Worker::Worker(int argc, char** argv)
    : runtime_(std::make_unique<detail::WorkerRuntime>(argc, argv)) {}
Worker::~Worker() = default;
void Worker::on(std::string name, Handler handler) {
  runtime_->on(std::move(name), std::move(handler));
}
std::string_view Worker::data() const noexcept { return runtime_->data(); }
std::span<std::byte> Worker::shared_memory() const noexcept { return runtime_->shared_memory(); }
int Worker::run() { return runtime_->run(); }

}  // namespace procpool
