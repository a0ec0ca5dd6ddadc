// rogue_worker: a worker that attacks its own supervisor on request, for pool_rogue_test.cpp.
//
// It serves through the SDK like any worker ("echo", "pid"). Its other handlers misbehave through
// a second mapping of its own segment (the fd the supervisor passed, attached again): they
// scribble random bytes over the result ring, the control block or the header, lie about record
// lengths and ring positions, send malformed frames, send result fragments without end, or flood
// the doorbell and the futexes.
//
// A misbehaving handler first writes "rogue <pid>: <handler> <input>" to stderr (so a crash
// report can be matched to the process that misbehaved); a ring misbehaviour then waits until the
// supervisor has read everything published so far. It misbehaves, rings its doorbell so the
// supervisor looks, and waits to be killed: at most kParkLimit, after which it exits 4 ("not
// detected"). Randomness comes from a seed in the input, so a failing seed reproduces.
//
// Handlers (input):
//   "echo" (any)               answer the input
//   "pid" (any)                answer the worker's pid
//   "scribble_ring" SEED       random bytes over the result ring's records and/or its positions
//   "lie_length" SEED          a record header larger than the ring allows or than what was
//                              published, or padding that does not end at the ring's end
//   "move_back" SEED           the result ring's write position backwards or misaligned, or the
//                              task ring's read position beyond what was published or misaligned
//   "scribble_control" SEED    random values in every control-block field, the heartbeat random,
//                              0 or in the far future, the running task's id random or 0; again
//                              every millisecond
//   "scribble_all" SEED        random bytes over the whole segment (header, control block, both
//                              rings and their positions); again every millisecond
//   "scribble_arena" SEED      random bytes over the segment header, which the
//                              supervisor never reads back; then answers "scribbled <pid>"
//   "bad_frame" "KIND SEED"    one well-formed ring record holding a bad frame; KIND: version,
//                              type, flags, length, short, stranger (an answer for a task not on
//                              board), duplicate (answers its task twice, the first time
//                              "first <pid>"), worker_type (a frame type only the supervisor
//                              sends), ready (a second READY), error_body (a malformed error
//                              payload), interleave (result fragments of two tasks),
//                              chunk_flag (a chunked answer to a plain task), chunk_body (run as
//                              the one item of a chunk: a malformed chunked answer)
//   "fragment_bomb" SEED       result fragments (kFrameMore) of its task, without end
//   "flood" "MODE MS"          MODE doorbell: write the doorbell eventfd in a tight loop; futex:
//                              FUTEX_WAKE every ring futex in a tight loop; for MS milliseconds,
//                              then answer "flooded <count>"

#include <sys/eventfd.h>        // eventfd_write
#include <unistd.h>             // getpid, dup, _exit
#include <procpool/worker.hpp>  // procpool::Worker, procpool::Task

#include <algorithm>    // std::min
#include <atomic>       // std::atomic (the futex words)
#include <chrono>       // deadlines
#include <climits>      // INT_MAX
#include <cstdint>      // fixed-width integers
#include <cstdio>       // std::fprintf
#include <cstdlib>      // std::getenv, std::strtol
#include <cstring>      // std::memcpy
#include <iterator>     // std::size
#include <random>       // std::mt19937_64
#include <span>         // std::span
#include <sstream>      // std::istringstream
#include <stdexcept>    // std::runtime_error
#include <string>       // std::string
#include <string_view>  // std::string_view
#include <thread>       // std::this_thread::sleep_for
#include <vector>       // std::vector

#include "procpool/chunk_format.hpp"          // ChunkWriter
#include "procpool/detail/futex.hpp"          // futex_wake
#include "procpool/detail/record_header.hpp"  // store_record_header
#include "procpool/segment.hpp"               // Segment, RingData, WorkerControl
#include "procpool/wait_strategy.hpp"         // wait_until
#include "procpool/wire_format.hpp"           // FrameHeader, write_frame
#include "procpool/worker_environment.hpp"    // kSegmentFdEnv, kDoorbellFdEnv

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using procpool::FrameHeader;
using procpool::FrameType;

// How long a misbehaving handler waits to be killed before it gives up and exits 4.
constexpr auto kParkLimit = 30s;

int fd_from_env(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr) throw std::runtime_error(std::string(name) + " is not set");
  return static_cast<int>(std::strtol(value, nullptr, 10));
}

// The rogue's own view of its segment: a second mapping of the same memfd, and the doorbell.
class Channel {
 public:
  Channel()
      : segment_(procpool::Segment::attach(::dup(fd_from_env(procpool::kSegmentFdEnv)))),
        doorbell_fd_(fd_from_env(procpool::kDoorbellFdEnv)) {}

  procpool::Segment& segment() { return segment_; }
  procpool::RingData& results() { return segment_.to_supervisor(); }
  std::span<std::byte> result_bytes() { return segment_.to_supervisor_bytes(); }
  procpool::WorkerControl& control() { return segment_.control(); }

  void ring() const { ::eventfd_write(doorbell_fd_, 1); }
  int doorbell_fd() const { return doorbell_fd_; }

  // Waits (bounded) until the supervisor has read everything published on the result ring, so
  // that what comes next is judged against a supervisor that has seen the ring as it is now.
  void settle() {
    const auto until = Clock::now() + 2s;
    while (results().read_pos.load(std::memory_order_acquire) !=
               results().write_pos.load(std::memory_order_acquire) &&
           Clock::now() < until) {
      std::this_thread::sleep_for(100us);
    }
  }

  // Appends one record of arbitrary bytes to the result ring (a fresh writer resumes at the
  // published position), publishes it and rings. False if there is no room.
  bool publish_record(std::span<const std::byte> record) {
    procpool::RingWriter writer = segment_.worker_writer();
    if (writer.try_write(record) != procpool::WriteStatus::kOk) return false;
    writer.publish();
    ring();
    return true;
  }

 private:
  procpool::Segment segment_;
  int doorbell_fd_;
};

// Misbehaviour done: wait to be killed. `meanwhile` runs every millisecond (a scribbler that
// keeps scribbling). Not killed within kParkLimit: the supervisor missed it; exit 4.
template <class F>
[[noreturn]] void park(F&& meanwhile) {
  const auto until = Clock::now() + kParkLimit;
  while (Clock::now() < until) {
    meanwhile();
    std::this_thread::sleep_for(1ms);
  }
  std::fprintf(stderr, "rogue %d: not killed within the park limit\n", ::getpid());
  std::fflush(stderr);
  std::_Exit(4);
}
[[noreturn]] void park() {
  park([] {});
}

void announce(const char* handler, std::string_view input) {
  std::fprintf(stderr, "rogue %d: %s %.*s\n", ::getpid(), handler, static_cast<int>(input.size()),
               input.data());
  std::fflush(stderr);
}

std::uint64_t seed_of(std::string_view text) {
  return std::stoull(std::string(text.empty() ? std::string_view("0") : text));
}

void fill_random(std::span<std::byte> bytes, std::mt19937_64& rng) {
  std::size_t i = 0;
  for (; i + 8 <= bytes.size(); i += 8) {
    const std::uint64_t word = rng();
    std::memcpy(bytes.data() + i, &word, 8);
  }
  for (; i < bytes.size(); ++i) bytes[i] = static_cast<std::byte>(rng());
}

std::span<const std::byte> bytes_of(const std::string& s) {
  return std::as_bytes(std::span<const char>(s.data(), s.size()));
}

// A frame as raw record bytes: `header` exactly as given (payload_size included), then `payload`.
std::string raw_frame(const FrameHeader& header, std::string_view payload) {
  std::string out(reinterpret_cast<const char*>(&header), sizeof header);
  out.append(payload);
  return out;
}

// A well-formed frame's record bytes.
std::string frame(FrameType type, std::uint64_t task_id, std::string_view payload,
                  std::uint16_t flags = 0) {
  FrameHeader header;
  header.type = type;
  header.task_id = task_id;
  header.flags = flags;
  header.payload_size = static_cast<std::uint32_t>(payload.size());
  return raw_frame(header, payload);
}

// --- the misbehaviours ---

[[noreturn]] void scribble_ring(Channel& channel, std::mt19937_64& rng) {
  channel.settle();
  procpool::RingData& ring = channel.results();
  const std::span<std::byte> bytes = channel.result_bytes();
  const std::uint64_t capacity = bytes.size();
  const std::uint64_t write = ring.write_pos.load(std::memory_order_relaxed);
  switch (rng() % 4) {
    case 0:  // every record byte random, then more "published" (at most the free room)
      fill_random(bytes, rng);
      ring.write_pos.store(write + 8 * (1 + rng() % (capacity / 8)), std::memory_order_release);
      break;
    case 1:  // the write position random
      ring.write_pos.store(rng(), std::memory_order_release);
      break;
    case 2: {  // random bytes where the next record goes, published
      const std::uint64_t length = 8 * (1 + rng() % 64);
      const std::uint64_t offset = write & (capacity - 1);
      fill_random(bytes.subspan(offset, std::min(length, capacity - offset)), rng);
      ring.write_pos.store(write + length, std::memory_order_release);
      break;
    }
    case 3: {  // the ring's shared header: both positions and both eventcounts
      ring.write_pos.store(rng(), std::memory_order_release);
      ring.read_pos.store(rng(), std::memory_order_release);
      fill_random(
          std::span<std::byte>(reinterpret_cast<std::byte*>(&ring.readable), sizeof ring.readable),
          rng);
      break;
    }
  }
  channel.ring();
  park();
}

[[noreturn]] void lie_length(Channel& channel, std::mt19937_64& rng) {
  channel.settle();
  procpool::RingData& ring = channel.results();
  const std::span<std::byte> bytes = channel.result_bytes();
  const std::uint64_t capacity = bytes.size();
  const std::uint32_t max_payload = procpool::ring_max_payload(capacity);
  const std::uint64_t write = ring.write_pos.load(std::memory_order_relaxed);
  const std::uint64_t offset = write & (capacity - 1);
  const std::uint64_t tail = capacity - offset;
  switch (rng() % 3) {
    case 0: {  // larger than any record may be
      const auto size = static_cast<std::uint32_t>(
          max_payload + 1 + rng() % (std::uint64_t{UINT32_MAX} - max_payload));
      procpool::detail::store_record_header(bytes.data() + offset, size, procpool::kRecordTagData);
      break;
    }
    case 1: {  // a legal size, but only the header is published
      const auto size = static_cast<std::uint32_t>(1 + rng() % max_payload);
      procpool::detail::store_record_header(bytes.data() + offset, size, procpool::kRecordTagData);
      break;
    }
    case 2: {  // padding that does not end at the ring's end
      std::uint32_t size = static_cast<std::uint32_t>(8 * (rng() % (capacity / 8)));
      if (size + 8 == tail) size += 8;
      procpool::detail::store_record_header(bytes.data() + offset, size,
                                            procpool::kRecordTagPadding);
      break;
    }
  }
  ring.write_pos.store(write + 8, std::memory_order_release);
  channel.ring();
  park();
}

[[noreturn]] void move_back(Channel& channel, std::mt19937_64& rng) {
  channel.settle();
  procpool::RingData& results = channel.results();
  procpool::RingData& tasks = channel.segment().to_worker();
  const std::uint64_t write = results.write_pos.load(std::memory_order_relaxed);
  switch (rng() % 4) {
    case 0:  // the result ring's write position backwards (the supervisor has read up to it)
      results.write_pos.store(write - 8 * (1 + rng() % (write / 8)), std::memory_order_release);
      break;
    case 1:  // the result ring's write position misaligned
      results.write_pos.store(write + 1 + rng() % 7, std::memory_order_release);
      break;
    case 2:  // the task ring's read position beyond what the supervisor published
      tasks.read_pos.store(tasks.write_pos.load(std::memory_order_acquire) + 8 * (1 + rng() % 4096),
                           std::memory_order_release);
      break;
    case 3:  // the task ring's read position misaligned
      tasks.read_pos.store(tasks.read_pos.load(std::memory_order_relaxed) + 1 + rng() % 7,
                           std::memory_order_release);
      break;
  }
  channel.ring();
  park();
}

[[noreturn]] void scribble_control(Channel& channel, std::mt19937_64& rng) {
  const std::uint64_t variant = rng() % 3;
  procpool::WorkerControl& control = channel.control();
  // Every field random; then what this variant says about the heartbeat and the running task.
  // Repeated every millisecond, so the SDK's heartbeat thread cannot repair it.
  auto scribble = [&] {
    control.cancel_task_id.store(rng(), std::memory_order_relaxed);
    switch (variant) {
      case 0:
        control.heartbeat_ms.store(rng(), std::memory_order_relaxed);
        control.current_task_id.store(rng(), std::memory_order_relaxed);
        break;
      case 1:
        control.heartbeat_ms.store(0, std::memory_order_relaxed);
        control.current_task_id.store(rng(), std::memory_order_relaxed);
        break;
      case 2:
        control.heartbeat_ms.store(~std::uint64_t{0} - rng() % 1000, std::memory_order_relaxed);
        control.current_task_id.store(0, std::memory_order_relaxed);
        break;
    }
  };
  scribble();
  channel.ring();
  park(scribble);
}

// Everything the worker can reach. The supervisor reads published answers first (settle), so
// what it finds afterwards is this task's doing alone.
[[noreturn]] void scribble_all(Channel& channel, std::mt19937_64& rng) {
  channel.settle();
  procpool::Segment& segment = channel.segment();
  const std::span<std::byte> whole(
      reinterpret_cast<std::byte*>(&segment.control()) - segment.layout().control_offset,
      segment.size());
  auto scribble = [&] { fill_random(whole, rng); };
  scribble();
  channel.ring();
  park(scribble);
}

void scribble_arena(Channel& channel, std::mt19937_64& rng) {
  procpool::Segment& segment = channel.segment();
  // The header: the supervisor keeps its own copy, the SDK its validated one.
  fill_random(std::span<std::byte>(reinterpret_cast<std::byte*>(&segment.control()) -
                                       segment.layout().control_offset,
                                   sizeof(procpool::SegmentHeader)),
              rng);
}

[[noreturn]] void bad_frame(Channel& channel, const std::string& kind, std::uint64_t task_id,
                            std::mt19937_64& rng) {
  channel.settle();
  const std::string payload = "rogue";
  FrameHeader header;
  header.type = FrameType::kResult;
  header.task_id = task_id;
  header.payload_size = static_cast<std::uint32_t>(payload.size());
  std::vector<std::string> records;
  if (kind == "version") {
    header.version = static_cast<std::uint8_t>(procpool::kWireVersion + 1 + rng() % 254);
    records.push_back(raw_frame(header, payload));
  } else if (kind == "type") {
    const std::uint8_t types[] = {0, 9, 10, 77, 255};
    header.type = static_cast<FrameType>(types[rng() % std::size(types)]);
    records.push_back(raw_frame(header, payload));
  } else if (kind == "flags") {
    header.flags = static_cast<std::uint16_t>(4 + rng() % 0xFFFC);  // bits above the known ones
    records.push_back(raw_frame(header, payload));
  } else if (kind == "length") {
    header.payload_size =
        static_cast<std::uint32_t>(payload.size() + 1 + rng() % (UINT32_MAX - payload.size()));
    records.push_back(raw_frame(header, payload));
  } else if (kind == "short") {
    records.push_back(raw_frame(header, payload).substr(0, rng() % sizeof(FrameHeader)));
  } else if (kind == "stranger") {
    const std::uint64_t stranger =
        rng() % 2 == 0 ? task_id + ((1 + rng() % 1000) << 32) : (rng() | 1);
    records.push_back(frame(FrameType::kResult, stranger, payload));
  } else if (kind == "duplicate") {
    records.push_back(frame(FrameType::kResult, task_id, "first " + std::to_string(::getpid())));
    records.push_back(frame(FrameType::kResult, task_id, "second"));
  } else if (kind == "worker_type") {
    const FrameType types[] = {FrameType::kTask, FrameType::kCancel, FrameType::kShutdown,
                               FrameType::kInit};
    records.push_back(frame(types[rng() % std::size(types)], task_id, payload));
  } else if (kind == "ready") {
    records.push_back(frame(FrameType::kReady, 0, procpool::encode_handler_names({"echo"})));
  } else if (kind == "error_body") {
    std::string body;
    switch (rng() % 3) {
      case 0:  // shorter than the error code
        body.assign(rng() % 4, 'e');
        break;
      case 1:  // code 0
        body.assign(4, '\0');
        break;
      case 2: {  // a code above the known ones
        const auto code =
            static_cast<std::uint32_t>(procpool::kMaxWorkerErrorCode + 1 + rng() % 1000);
        body.assign(reinterpret_cast<const char*>(&code), sizeof code);
        body += "message";
        break;
      }
    }
    records.push_back(frame(FrameType::kError, task_id, body));
  } else if (kind == "chunk_flag") {  // a chunked answer to a plain task
    std::string body;
    procpool::ChunkWriter writer(body);
    writer.begin();
    writer.add_result(0, payload);
    records.push_back(frame(FrameType::kResult, task_id, body, procpool::kFrameChunk));
  } else if (kind == "chunk_body") {  // run inside a chunk of one item: a malformed answer
    std::string body;
    procpool::ChunkWriter writer(body);
    writer.begin();
    switch (rng() % 5) {
      case 0:  // no items at all
        break;
      case 1:  // two answers for one item
        writer.add_result(0, "a");
        writer.add_result(0, "b");
        break;
      case 2:  // an unknown code
        writer.add_result(
            static_cast<std::uint32_t>(procpool::kMaxWorkerErrorCode + 1 + rng() % 1000), "c");
        break;
      case 3:  // a length past the end
        writer.add_result(0, "dddd");
        body.resize(body.size() - 1 - rng() % 4);
        break;
      case 4:  // bytes left over
        writer.add_result(0, "e");
        body += "trailing";
        break;
    }
    records.push_back(frame(FrameType::kResult, task_id, body, procpool::kFrameChunk));
  } else if (kind == "interleave") {
    records.push_back(frame(FrameType::kResult, task_id, payload, procpool::kFrameMore));
    records.push_back(frame(FrameType::kResult, task_id + (std::uint64_t{1} << 32), payload));
  } else {
    throw std::runtime_error("bad_frame: unknown kind \"" + kind + "\"");
  }
  for (const std::string& record : records) {
    if (!channel.publish_record(bytes_of(record))) {
      throw std::runtime_error("bad_frame: no room in the result ring");
    }
  }
  park();
}

[[noreturn]] void fragment_bomb(Channel& channel, std::uint64_t task_id, std::mt19937_64& rng) {
  channel.settle();
  procpool::RingWriter writer = channel.segment().worker_writer();
  std::string chunk(writer.max_payload() - sizeof(FrameHeader), '\0');
  fill_random(std::as_writable_bytes(std::span<char>(chunk.data(), chunk.size())), rng);
  FrameHeader header;
  header.type = FrameType::kResult;
  header.task_id = task_id;
  header.flags = procpool::kFrameMore;
  const auto until = Clock::now() + kParkLimit;
  const auto needed = static_cast<std::uint32_t>(sizeof(FrameHeader) + chunk.size());
  while (Clock::now() < until) {
    const procpool::WriteStatus status = procpool::write_frame(writer, header, bytes_of(chunk));
    if (status == procpool::WriteStatus::kOk) {
      writer.publish();
      channel.ring();
    } else if (status == procpool::WriteStatus::kFull) {
      procpool::wait_until(
          channel.results().writable, [&] { return writer.can_reserve(needed); },
          procpool::WaitPolicy{}, 100ms);
    } else {
      break;  // the supervisor's read position is impossible: it is gone or so are we
    }
  }
  park();
}

std::uint64_t flood(Channel& channel, const std::string& mode, std::chrono::milliseconds length) {
  const auto until = Clock::now() + length;
  procpool::Segment& segment = channel.segment();
  // The epoch word each eventcount's waiters sleep on is its first member.
  const std::atomic<std::uint32_t>* futexes[] = {
      reinterpret_cast<const std::atomic<std::uint32_t>*>(&segment.to_supervisor().readable),
      reinterpret_cast<const std::atomic<std::uint32_t>*>(&segment.to_supervisor().writable),
      reinterpret_cast<const std::atomic<std::uint32_t>*>(&segment.to_worker().readable),
      reinterpret_cast<const std::atomic<std::uint32_t>*>(&segment.to_worker().writable),
  };
  std::uint64_t count = 0;
  while (Clock::now() < until) {
    for (int i = 0; i < 256; ++i, ++count) {
      if (mode == "doorbell") {
        ::eventfd_write(channel.doorbell_fd(), 1);
      } else if (mode == "futex") {
        procpool::detail::futex_wake(futexes[count % 4], INT_MAX);
      } else {
        throw std::runtime_error("flood: unknown mode \"" + mode + "\"");
      }
    }
  }
  return count;
}

}  // namespace

int main(int argc, char** argv) {
  procpool::Worker worker(argc, argv);
  Channel channel;

  worker.on("echo", [](procpool::Task& task) { task.reply(task.input()); });
  worker.on("pid", [](procpool::Task& task) { task.reply(std::to_string(::getpid())); });
  worker.on("scribble_ring", [&](procpool::Task& task) {
    announce("scribble_ring", task.input());
    std::mt19937_64 rng(seed_of(task.input()));
    scribble_ring(channel, rng);
  });
  worker.on("lie_length", [&](procpool::Task& task) {
    announce("lie_length", task.input());
    std::mt19937_64 rng(seed_of(task.input()));
    lie_length(channel, rng);
  });
  worker.on("move_back", [&](procpool::Task& task) {
    announce("move_back", task.input());
    std::mt19937_64 rng(seed_of(task.input()));
    move_back(channel, rng);
  });
  worker.on("scribble_control", [&](procpool::Task& task) {
    announce("scribble_control", task.input());
    std::mt19937_64 rng(seed_of(task.input()));
    scribble_control(channel, rng);
  });
  worker.on("scribble_all", [&](procpool::Task& task) {
    announce("scribble_all", task.input());
    std::mt19937_64 rng(seed_of(task.input()));
    scribble_all(channel, rng);
  });
  worker.on("scribble_arena", [&](procpool::Task& task) {
    announce("scribble_arena", task.input());
    std::mt19937_64 rng(seed_of(task.input()));
    scribble_arena(channel, rng);
    task.reply("scribbled " + std::to_string(::getpid()));
  });
  worker.on("bad_frame", [&](procpool::Task& task) {
    announce("bad_frame", task.input());
    std::istringstream in{std::string(task.input())};
    std::string kind;
    std::uint64_t seed = 0;
    in >> kind >> seed;
    std::mt19937_64 rng(seed);
    bad_frame(channel, kind, task.id(), rng);
  });
  worker.on("fragment_bomb", [&](procpool::Task& task) {
    announce("fragment_bomb", task.input());
    std::mt19937_64 rng(seed_of(task.input()));
    fragment_bomb(channel, task.id(), rng);
  });
  worker.on("flood", [&](procpool::Task& task) {
    announce("flood", task.input());
    std::istringstream in{std::string(task.input())};
    std::string mode;
    long milliseconds = 0;
    in >> mode >> milliseconds;
    task.reply("flooded " +
               std::to_string(flood(channel, mode, std::chrono::milliseconds(milliseconds))));
  });
  return worker.run();
}
