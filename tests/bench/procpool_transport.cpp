#include "procpool_transport.hpp"

#include <signal.h>    // SIGKILL
#include <sys/wait.h>  // waitpid
#include <unistd.h>    // fork, _exit

#include <cerrno>   // errno
#include <chrono>   // timeouts
#include <cstring>  // std::memcpy
#include <vector>   // samples

#include "bench_stats.hpp"
#include "procpool/error.hpp"
#include "procpool/segment.hpp"
#include "procpool/wait_strategy.hpp"
#include "procpool/wire_format.hpp"

namespace procpool::bench {
namespace {

using namespace std::chrono_literals;
constexpr auto kBound = 30s;  // no wait in a benchmark is unbounded
constexpr std::uint64_t kStop = ~std::uint64_t{0};

// Runs `body` in a forked child that ends with _exit; the parent reaps it after `parent` returns.
template <class Child, class Parent>
auto with_child(Segment& segment, Child&& child, Parent&& parent) {
  const pid_t pid = ::fork();
  if (pid < 0) throw_errno(errno, "fork");
  if (pid == 0) ::_exit(child(segment));
  struct Reaper {
    pid_t pid;
    ~Reaper() {
      int status = 0;
      for (int i = 0; i < 10'000; ++i) {  // 10 s bound
        if (::waitpid(pid, &status, WNOHANG) == pid) return;
        ::usleep(1000);
      }
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
    }
  } reaper{pid};
  return parent(segment);
}

template <class Reader>
bool wait_readable(RingData& ring, Reader& reader) {
  return wait_until(
             ring.readable, [&] { return reader.poll(); }, WaitPolicy{}, kBound) ==
         WaitResult::kReady;
}

// Reads one frame; returns false on timeout or a protocol error.
bool read_frame(RingData& ring, RingReader& reader, FrameHeader& header, std::uint64_t& value) {
  std::span<const std::byte> record;
  ReadStatus status;
  while ((status = reader.try_read(record)) == ReadStatus::kEmpty) {
    if (!wait_readable(ring, reader)) return false;
  }
  std::span<const std::byte> payload;
  if (status != ReadStatus::kOk || decode_frame(record, header, payload) != DecodeStatus::kOk ||
      payload.size() != sizeof value) {
    return false;
  }
  std::memcpy(&value, payload.data(), sizeof value);
  return true;
}

bool send_frame(RingData& ring, RingWriter& writer, FrameType type, std::uint64_t task_id,
                std::uint64_t value) {
  FrameHeader header;
  header.type = type;
  header.task_id = task_id;
  const auto payload = std::as_bytes(std::span(&value, 1));
  WriteStatus status;
  while ((status = write_frame(writer, header, payload)) == WriteStatus::kFull) {
    writer.publish();
    if (wait_until(
            ring.writable, [&] { return writer.can_reserve(64); }, WaitPolicy{}, kBound) !=
        WaitResult::kReady) {
      return false;
    }
  }
  return status == WriteStatus::kOk;
}

// The worker side shared by the L1 and demo workloads: answer every task frame x with x + 1,
// publishing replies in batches of whatever arrived together.
int increment_worker(Segment& segment) {
  RingReader tasks = segment.worker_reader();
  RingWriter results = segment.worker_writer();
  for (;;) {
    if (!wait_readable(segment.to_worker(), tasks)) return 2;
    std::span<const std::byte> record;
    ReadStatus status;
    while ((status = tasks.try_read(record)) == ReadStatus::kOk) {
      FrameHeader header;
      std::span<const std::byte> payload;
      std::uint64_t value;
      if (decode_frame(record, header, payload) != DecodeStatus::kOk ||
          payload.size() != sizeof value) {
        return 3;
      }
      std::memcpy(&value, payload.data(), sizeof value);
      if (header.type == FrameType::kShutdown) {
        results.publish();
        return 0;
      }
      if (!send_frame(segment.to_supervisor(), results, FrameType::kResult, header.task_id,
                      value + 1)) {
        return 4;
      }
    }
    tasks.release();
    results.publish();
    if (status == ReadStatus::kCorrupt) return 5;
  }
}

void stop_worker(Segment& segment, RingWriter& tasks) {
  send_frame(segment.to_worker(), tasks, FrameType::kShutdown, 0, 0);
  tasks.publish();
}

}  // namespace

PingPongResult procpool_pingpong(std::size_t warmup, std::size_t measured) {
  Segment segment = Segment::create(SegmentConfig{}, 1);
  return with_child(segment, increment_worker, [&](Segment& s) {
    RingWriter tasks = s.supervisor_writer();
    RingReader results = s.supervisor_reader();
    std::vector<double> samples;
    samples.reserve(measured);
    for (std::size_t i = 0; i < warmup + measured; ++i) {
      const std::uint64_t x = 1'000'000 + i;
      const std::uint64_t start = now_ns();
      if (!send_frame(s.to_worker(), tasks, FrameType::kTask, i, x)) throw Error("L1: send");
      tasks.publish();
      FrameHeader header;
      std::uint64_t y = 0;
      if (!read_frame(s.to_supervisor(), results, header, y)) throw Error("L1: no reply");
      results.release();
      const std::uint64_t end = now_ns();
      if (y != x + 1 || header.task_id != i) throw Error("L1: wrong answer");
      if (i >= warmup) samples.push_back(static_cast<double>(end - start) / 1000.0);
    }
    stop_worker(s, tasks);
    return PingPongResult{percentile_nearest_rank(samples, 0.50),
                          percentile_nearest_rank(samples, 0.99)};
  });
}

double procpool_oneway_msgs_per_s(std::uint64_t messages) {
  // Rings of 64 KiB, the byte size of the raw-ring baseline's (4096 slots of 16 bytes).
  SegmentConfig config;
  config.to_worker_capacity = 64 * 1024;
  config.to_supervisor_capacity = 64 * 1024;
  Segment segment = Segment::create(config, 1);
  auto consumer = [messages](Segment& s) {
    RingReader in = s.worker_reader();
    RingWriter out = s.worker_writer();
    std::uint64_t sum = 0;
    if (!send_frame(s.to_supervisor(), out, FrameType::kReady, 0, 0)) return 2;
    out.publish();
    for (std::uint64_t seen = 0; seen < messages;) {
      std::span<const std::byte> record;
      const ReadStatus status = in.try_read(record);
      if (status == ReadStatus::kEmpty) {
        in.release();
        if (!wait_readable(s.to_worker(), in)) return 3;
        continue;
      }
      if (status != ReadStatus::kOk || record.size() != 16) return 4;
      std::uint64_t words[2];
      std::memcpy(words, record.data(), 16);
      if (words[0] != seen) return 5;
      sum += words[0] + words[1];
      ++seen;
      if ((seen & 255) == 0) in.release();
    }
    in.release();
    if (!send_frame(s.to_supervisor(), out, FrameType::kResult, 0, sum)) return 6;
    out.publish();
    return 0;
  };
  return with_child(segment, consumer, [&](Segment& s) {
    RingWriter out = s.supervisor_writer();
    RingReader in = s.supervisor_reader();
    FrameHeader header;
    std::uint64_t value = 0;
    if (!read_frame(s.to_supervisor(), in, header, value)) throw Error("oneway: no ready");
    in.release();
    const std::uint64_t start = now_ns();
    for (std::uint64_t i = 0; i < messages; ++i) {
      std::span<std::byte> room;
      WriteStatus status;
      while ((status = out.try_reserve(16, room)) == WriteStatus::kFull) {
        out.publish();
        if (wait_until(
                s.to_worker().writable, [&] { return out.can_reserve(16); }, WaitPolicy{},
                kBound) != WaitResult::kReady) {
          throw Error("oneway: consumer stalled");
        }
      }
      if (status != WriteStatus::kOk) throw Error("oneway: ring fault");
      const std::uint64_t words[2] = {i, i * 3};
      std::memcpy(room.data(), words, 16);
      out.commit(16);
      if ((i & 255) == 255) out.publish();
    }
    out.publish();
    if (!read_frame(s.to_supervisor(), in, header, value)) throw Error("oneway: no report");
    const std::uint64_t end = now_ns();
    // sum over i of (i + 3i) = 4 * n(n-1)/2, modulo 2^64.
    if (value != 2 * messages * (messages - 1)) throw Error("oneway: wrong checksum");
    return static_cast<double>(messages) * 1e9 / static_cast<double>(end - start);
  });
}

double procpool_pipelined_tasks_per_s(std::uint64_t tasks, std::uint32_t window) {
  Segment segment = Segment::create(SegmentConfig{}, 1);
  return with_child(segment, increment_worker, [&](Segment& s) {
    RingWriter out = s.supervisor_writer();
    RingReader in = s.supervisor_reader();
    std::uint64_t sent = 0, received = 0;
    const std::uint64_t start = now_ns();
    while (received < tasks) {
      while (sent < tasks && sent - received < window) {
        if (!send_frame(s.to_worker(), out, FrameType::kTask, sent, sent)) {
          throw Error("demo: worker stopped taking tasks");
        }
        ++sent;
      }
      out.publish();
      FrameHeader header;
      std::uint64_t value = 0;
      if (!read_frame(s.to_supervisor(), in, header, value)) throw Error("demo: no result");
      if (header.task_id != received || value != received + 1) {
        throw Error("demo: wrong result for task " + std::to_string(received));
      }
      ++received;
      // Drain whatever else has arrived before releasing the batch.
      std::span<const std::byte> record;
      while (received < sent && in.try_read(record) == ReadStatus::kOk) {
        std::span<const std::byte> payload;
        if (decode_frame(record, header, payload) != DecodeStatus::kOk || payload.size() != 8) {
          throw Error("demo: bad frame");
        }
        std::memcpy(&value, payload.data(), 8);
        if (header.task_id != received || value != received + 1) {
          throw Error("demo: wrong result for task " + std::to_string(received));
        }
        ++received;
      }
      in.release();
    }
    const std::uint64_t end = now_ns();
    stop_worker(s, out);
    return static_cast<double>(tasks) * 1e9 / static_cast<double>(end - start);
  });
}

}  // namespace procpool::bench
