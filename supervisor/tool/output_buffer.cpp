#include "output_buffer.hpp"

#include <cerrno>   // errno, ETIMEDOUT
#include <cstring>  // std::memcpy
#include <utility>  // std::exchange

#include "error_stream.hpp"
#include "interrupt_signals.hpp"

namespace procpool::tool {

void OutputBuffer::append_line(std::string_view text) {
  if (text.size() + 1 > capacity_ - size_) {
    flush();
    if (text.size() + 1 > capacity_) {  // larger than the buffer: straight through
      write(text.data(), text.size());
      write("\n", 1);
      return;
    }
  }
  std::memcpy(data_.get() + size_, text.data(), text.size());
  size_ += text.size();
  data_[size_++] = '\n';
}

void OutputBuffer::flush() {
  if (size_ == 0) return;
  const std::size_t size = std::exchange(size_, 0);
  write(data_.get(), size);
}

void OutputBuffer::write(const char* data, std::size_t size) {
  // A reader that stopped reading must not hold up an interrupted run: while this may block,
  // a second SIGINT/SIGTERM ends the process.
  const InterruptSignals::BlockingWrite may_block;
  if (abandoned_ || write_all(fd_, data, size, deadline_)) return;
  if (deadline_ && errno == ETIMEDOUT) {
    abandoned_ = true;
    return;
  }
  on_error_(errno);
}

}  // namespace procpool::tool
