#pragma once

// Output of `procpool map`: one large buffer of result lines, written with write(2).
//
// It knows which input line each buffered result belongs to, so that when standard output
// fails (EPIPE, ENOSPC, EIO, ...) it can tell exactly which results did not get out in full:
// the run then names those lines as not completed instead of losing track of them.

#include <chrono>       // the deadline
#include <cstddef>      // std::size_t
#include <cstdint>      // std::uint64_t
#include <memory>       // std::unique_ptr
#include <optional>     // the deadline
#include <string_view>  // results
#include <vector>       // the buffered results' lines, the lost ones

namespace procpool::tool {

class OutputBuffer {
 public:
  // Pass as `line` for output that stands for no result (a placeholder): never counted lost.
  static constexpr std::uint64_t kUntracked = ~std::uint64_t{0};

  OutputBuffer(int fd, std::size_t capacity)
      : fd_(fd), capacity_(capacity), data_(new char[capacity]) {}

  // `text` and a newline: the result of input line `line`. Once the output failed, the result
  // is not written and `line` counts as lost.
  void append_line(std::string_view text, std::uint64_t line);
  void flush();
  bool empty() const noexcept { return size_ == 0; }

  // Standard output failed: nothing more is written. error() is the errno of the failure.
  bool failed() const noexcept { return error_ != 0; }
  int error() const noexcept { return error_; }
  // The lines whose result was given after the failure or did not get out in full, in the
  // order given.
  const std::vector<std::uint64_t>& lost() const noexcept { return lost_; }

  // For a stop at once: from now on the reader gets until `deadline` to take what is written;
  // what it has not taken by then is dropped, and so is everything after (abandoned()).
  void set_deadline(std::chrono::steady_clock::time_point deadline) noexcept {
    deadline_ = deadline;
  }
  bool abandoned() const noexcept { return abandoned_; }

 private:
  struct Buffered {
    std::size_t end;     // offset just past the result's newline
    std::uint64_t line;  // its input line
  };

  // False if the output failed, with `written` bytes of it written.
  bool write(const char* data, std::size_t size, std::size_t& written);
  void lose(std::uint64_t line);

  int fd_;
  std::size_t capacity_;
  std::size_t size_ = 0;
  std::unique_ptr<char[]> data_;
  std::vector<Buffered> buffered_;  // the results in data_, in order
  std::vector<std::uint64_t> lost_;
  int error_ = 0;
  std::optional<std::chrono::steady_clock::time_point> deadline_;
  bool abandoned_ = false;
};

}  // namespace procpool::tool
