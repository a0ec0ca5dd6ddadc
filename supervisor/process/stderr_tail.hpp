#pragma once

#include <cstddef>      // std::size_t
#include <deque>        // std::deque
#include <string>       // std::string
#include <string_view>  // std::string_view

namespace procpool::detail {

// The last lines a worker wrote to stderr, bounded in lines and bytes, for crash reports.
class StderrTail {
 public:
  static constexpr std::size_t kMaxLines = 20;
  static constexpr std::size_t kMaxLineBytes = 512;

  void append(std::string_view bytes) {
    for (char c : bytes) {
      if (c == '\n') {
        push_line();
      } else if (partial_.size() < kMaxLineBytes) {
        partial_.push_back(c);
      }
    }
  }

  // The last kMaxLines lines, oldest first, each prefixed with "  | " and ended with '\n'. A
  // partial last line (the worker died mid-line) is one of them.
  std::string text() const {
    std::string out;
    const bool drop_oldest = !partial_.empty() && lines_.size() == kMaxLines;
    for (std::size_t i = drop_oldest ? 1 : 0; i < lines_.size(); ++i) {
      out += "  | " + lines_[i] + "\n";
    }
    if (!partial_.empty()) out += "  | " + partial_ + "\n";
    return out;
  }

  bool empty() const noexcept { return lines_.empty() && partial_.empty(); }

 private:
  void push_line() {
    lines_.push_back(std::move(partial_));
    partial_.clear();
    if (lines_.size() > kMaxLines) lines_.pop_front();
  }

  std::deque<std::string> lines_;
  std::string partial_;
};

}  // namespace procpool::detail
