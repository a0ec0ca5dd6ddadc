#include "map/output_buffer.hpp"

#include <cerrno>   // errno, ETIMEDOUT
#include <cstring>  // std::memcpy

#include "common/error_stream.hpp"
#include "common/interrupt_signals.hpp"

namespace procpool::tool {

void OutputBuffer::append_line(std::string_view text, std::uint64_t line) {
  if (failed()) {
    lose(line);
    return;
  }
  if (text.size() + 1 > capacity_ - size_) {
    flush();
    if (failed()) {
      lose(line);
      return;
    }
    if (text.size() + 1 > capacity_) {  // larger than the buffer: straight through
      std::size_t written = 0;
      if (!write(text.data(), text.size(), written) || !write("\n", 1, written)) lose(line);
      return;
    }
  }
  std::memcpy(data_.get() + size_, text.data(), text.size());
  size_ += text.size();
  data_[size_++] = '\n';
  if (line != kUntracked) buffered_.push_back({size_, line});
}

void OutputBuffer::flush() {
  if (size_ == 0) return;
  std::size_t written = 0;
  if (!write(data_.get(), size_, written)) {
    for (const Buffered& result : buffered_) {
      if (result.end > written) lose(result.line);
    }
  }
  size_ = 0;
  buffered_.clear();
}

bool OutputBuffer::write(const char* data, std::size_t size, std::size_t& written) {
  // A reader that stopped reading must not hold up an interrupted run: while this may block,
  // a second SIGINT/SIGTERM ends the process.
  const InterruptSignals::BlockingWrite may_block;
  if (abandoned_ || write_all(fd_, data, size, deadline_, &written)) return true;
  if (deadline_ && errno == ETIMEDOUT) {  // dropped on purpose, and reported as such
    abandoned_ = true;
    return true;
  }
  error_ = errno != 0 ? errno : EIO;
  return false;
}

void OutputBuffer::lose(std::uint64_t line) {
  if (line != kUntracked) lost_.push_back(line);
}

}  // namespace procpool::tool
