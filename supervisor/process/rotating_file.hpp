#pragma once

// OutputSink::file: an append-only log file (0600) rotated by size: path -> path.1 -> ... ->
// path.keep, the oldest removed (logrotate's and supervisord's numbering).

#include <cstdint>      // std::uint64_t
#include <string>       // std::string
#include <string_view>  // std::string_view

#include "procpool/unique_fd.hpp"

namespace procpool::detail {

class RotatingFile {
 public:
  // Opens (creates) `path`; throws SystemError.
  RotatingFile(std::string path, std::uint64_t max_bytes, unsigned keep);
  // Appends, filling the file up to max_bytes and rotating before the next byte (0: never
  // rotated). Write errors drop the bytes: a full disk must not stop the supervisor.
  void write(std::string_view bytes) noexcept;

 private:
  void rotate() noexcept;
  void open() noexcept;

  std::string path_;
  std::uint64_t max_bytes_;
  unsigned keep_;
  std::uint64_t size_ = 0;
  UniqueFd fd_;
};

}  // namespace procpool::detail
