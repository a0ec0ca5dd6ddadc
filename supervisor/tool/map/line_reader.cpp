#include "map/line_reader.hpp"

#include <unistd.h>  // read

#include <algorithm>  // std::min
#include <cerrno>     // errno
#include <cstring>    // std::memchr, std::memmove

namespace procpool::tool {

LineReader::LineReader(int fd, std::size_t max_line, std::size_t read_buffer)
    : fd_(fd), max_line_(max_line), buffer_(std::min(read_buffer, max_line + 1)) {}

LineReader::Next LineReader::next(std::string_view& line) {
  char* const data = buffer_.data();
  if (skipping_) {
    const auto* newline = static_cast<const char*>(std::memchr(data + begin_, '\n', end_ - begin_));
    if (newline == nullptr) {
      begin_ = scanned_ = end_;
      return eof_ ? Next::kEnd : Next::kNeedInput;
    }
    begin_ = scanned_ = static_cast<std::size_t>(newline - data) + 1;
    skipping_ = false;
  }
  const auto* newline =
      static_cast<const char*>(std::memchr(data + scanned_, '\n', end_ - scanned_));
  if (newline != nullptr) {
    const auto at = static_cast<std::size_t>(newline - data);
    line = std::string_view(data + begin_, at - begin_);
    begin_ = scanned_ = at + 1;
    return Next::kLine;
  }
  scanned_ = end_;  // [begin_, end_) holds no newline: do not scan it again
  if (end_ - begin_ > max_line_) {
    skipping_ = true;
    begin_ = scanned_ = end_;
    return Next::kTooLong;
  }
  if (!eof_) return Next::kNeedInput;
  if (begin_ == end_) return Next::kEnd;
  line = std::string_view(data + begin_, end_ - begin_);  // the last line, without a newline
  begin_ = scanned_ = end_;
  return Next::kLine;
}

bool LineReader::fill() {
  if (begin_ == end_) {
    begin_ = scanned_ = end_ = 0;
  } else if (end_ == buffer_.size() && begin_ > 0) {
    std::memmove(buffer_.data(), buffer_.data() + begin_, end_ - begin_);
    end_ -= begin_;
    scanned_ -= begin_;
    begin_ = 0;
  }
  if (end_ == buffer_.size()) {  // one line fills the buffer: grow (next() bounds this)
    buffer_.resize(std::min(buffer_.size() * 2, max_line_ + 1));
  }
  for (;;) {
    const ssize_t n = ::read(fd_, buffer_.data() + end_, buffer_.size() - end_);
    if (n > 0) {
      end_ += static_cast<std::size_t>(n);
      return true;
    }
    if (n == 0) {
      eof_ = true;
      return true;
    }
    if (errno == EINTR) continue;
    // An inherited O_NONBLOCK stdin that polled readable and has nothing after all: the main
    // loop polls again.
    if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
    return false;
  }
}

}  // namespace procpool::tool
