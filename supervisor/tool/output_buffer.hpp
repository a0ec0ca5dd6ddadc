#pragma once

// Output of `procpool map`: one large buffer of result lines, written with write(2).

#include <chrono>       // the deadline
#include <cstddef>      // std::size_t
#include <memory>       // std::unique_ptr
#include <optional>     // the deadline
#include <string_view>  // results

namespace procpool::tool {

class OutputBuffer {
 public:
  // `on_error(errno)` is called when a write fails (the buffer is dropped).
  OutputBuffer(int fd, std::size_t capacity, void (*on_error)(int))
      : fd_(fd), capacity_(capacity), data_(new char[capacity]), on_error_(on_error) {}

  // `text` and a newline.
  void append_line(std::string_view text);
  void flush();
  bool empty() const noexcept { return size_ == 0; }

  // For a stop at once: from now on the reader gets until `deadline` to take what is written;
  // what it has not taken by then is dropped, and so is everything after (abandoned()).
  void set_deadline(std::chrono::steady_clock::time_point deadline) noexcept {
    deadline_ = deadline;
  }
  bool abandoned() const noexcept { return abandoned_; }

 private:
  void write(const char* data, std::size_t size);

  int fd_;
  std::size_t capacity_;
  std::size_t size_ = 0;
  std::unique_ptr<char[]> data_;
  void (*on_error_)(int);
  std::optional<std::chrono::steady_clock::time_point> deadline_;
  bool abandoned_ = false;
};

}  // namespace procpool::tool
