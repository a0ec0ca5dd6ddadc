#pragma once

// The rogue worker's own view of its segment (a second mapping of the memfd the supervisor
// passed, and the doorbell) and what every attack needs: parking until killed, the announcement
// on stderr, seeded randomness, and byte views. See rogue_worker.cpp for the handlers.

#include <sys/eventfd.h>  // eventfd_write
#include <unistd.h>       // getpid, dup, _exit

#include <chrono>       // deadlines
#include <cstddef>      // std::byte
#include <cstdint>      // fixed-width integers
#include <cstdio>       // std::fprintf
#include <cstdlib>      // std::getenv, std::strtol, std::_Exit
#include <cstring>      // std::memcpy
#include <random>       // std::mt19937_64
#include <span>         // std::span
#include <stdexcept>    // std::runtime_error
#include <string>       // std::string
#include <string_view>  // std::string_view
#include <thread>       // std::this_thread::sleep_for

#include "procpool/segment.hpp"             // Segment, RingData, WorkerControl
#include "procpool/worker_environment.hpp"  // kSegmentFdEnv, kDoorbellFdEnv

namespace rogue {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// How long a misbehaving handler waits to be killed before it gives up and exits 4.
constexpr auto kParkLimit = 30s;

inline int fd_from_env(const char* name) {
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
[[noreturn]] inline void park() {
  park([] {});
}

inline void announce(const char* handler, std::string_view input) {
  std::fprintf(stderr, "rogue %d: %s %.*s\n", ::getpid(), handler, static_cast<int>(input.size()),
               input.data());
  std::fflush(stderr);
}

inline std::uint64_t seed_of(std::string_view text) {
  return std::stoull(std::string(text.empty() ? std::string_view("0") : text));
}

inline void fill_random(std::span<std::byte> bytes, std::mt19937_64& rng) {
  std::size_t i = 0;
  for (; i + 8 <= bytes.size(); i += 8) {
    const std::uint64_t word = rng();
    std::memcpy(bytes.data() + i, &word, 8);
  }
  for (; i < bytes.size(); ++i) bytes[i] = static_cast<std::byte>(rng());
}

inline std::span<const std::byte> bytes_of(const std::string& s) {
  return std::as_bytes(std::span<const char>(s.data(), s.size()));
}

}  // namespace rogue
