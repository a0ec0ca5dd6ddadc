#pragma once

// OutputSink::file: an append-only log file (0600) rotated by size: path -> path.1 -> ... ->
// path.keep, the oldest removed (logrotate's and supervisord's numbering).
//
// What cannot be written (a full disk; a rotation that cannot be done because the directory was
// made read-only or removed) is dropped and counted (dropped()), and does not end the sink: a
// failed rotation, or the open of the new file, is tried again on a later write, at most once
// per retry_after, so a broken directory costs a few syscalls a second, not a few per line. The
// file is never written past max_bytes meanwhile.

#include <chrono>       // std::chrono::steady_clock, std::chrono::milliseconds
#include <cstdint>      // std::uint64_t
#include <string>       // std::string
#include <string_view>  // std::string_view

#include "procpool/unique_fd.hpp"

namespace procpool::detail {

class RotatingFile {
 public:
  static constexpr std::chrono::milliseconds kRetryAfter{1000};

  // Opens (creates) `path`; throws SystemError.
  RotatingFile(std::string path, std::uint64_t max_bytes, unsigned keep,
               std::chrono::milliseconds retry_after = kRetryAfter);
  // Appends, filling the file up to max_bytes and rotating before the next byte (0: never
  // rotated). Write errors drop the bytes: a full disk must not stop the supervisor.
  void write(std::string_view bytes) noexcept;
  // Bytes dropped so far: write errors, and writes while no file with room could be had.
  std::uint64_t dropped() const noexcept { return dropped_; }

 private:
  bool make_room() noexcept;
  bool rotate() noexcept;
  bool open() noexcept;

  std::string path_;
  std::uint64_t max_bytes_;
  unsigned keep_;
  std::chrono::milliseconds retry_after_;
  std::uint64_t size_ = 0;
  std::uint64_t dropped_ = 0;
  bool failing_ = false;  // the last make_room() failed; the next waits for retry_at_
  std::chrono::steady_clock::time_point retry_at_{};
  UniqueFd fd_;
};

}  // namespace procpool::detail
