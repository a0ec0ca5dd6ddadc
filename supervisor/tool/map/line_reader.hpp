#pragma once

// Input of `procpool map`: large read(2)s into one buffer, split on '\n'. The buffer grows only
// to hold one long line, up to max_line + 1 bytes; a longer line is skipped (and reported as
// such) without buffering it whole.

#include <cstddef>      // std::size_t
#include <cstdint>      // std::uint8_t
#include <string_view>  // lines
#include <vector>       // the buffer

namespace procpool::tool {

class LineReader {
 public:
  static constexpr std::size_t kDefaultReadBuffer = 1 << 20;

  enum class Next : std::uint8_t {
    kLine,       // `line` is the next line, valid until the next fill()
    kTooLong,    // the next line has more than max_line bytes; it is being skipped
    kNeedInput,  // no complete line buffered: fill()
    kEnd,        // end of input
  };

  // `read_buffer`: the buffer's first size, the most one read(2) asks for until a long line
  // makes it grow.
  LineReader(int fd, std::size_t max_line, std::size_t read_buffer = kDefaultReadBuffer);

  // The next buffered line; a last line without a newline once the input has ended.
  Next next(std::string_view& line);

  // One read(2), called once poll(2) said the input is readable, so it does not block: some
  // input, end of input, nothing (a spurious wake-up, or EAGAIN from an O_NONBLOCK input), or
  // an error (false, errno set). Lines returned earlier are invalid afterwards.
  bool fill();

 private:
  int fd_;
  std::size_t max_line_;
  std::vector<char> buffer_;
  std::size_t begin_ = 0;    // first unconsumed byte
  std::size_t scanned_ = 0;  // [begin_, scanned_) is known to hold no newline
  std::size_t end_ = 0;      // end of the data read
  bool eof_ = false;
  bool skipping_ = false;  // inside a line longer than max_line_
};

}  // namespace procpool::tool
