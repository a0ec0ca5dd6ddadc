#pragma once
#include "procpool/detail/require_cxx20.hpp"

// The payloads of chunked tasks (a kTask / kResult frame with kFrameChunk): many small inputs,
// or their answers, in one message, like the chunks of Python's Pool.map(chunksize=N). A chunk
// is one task to the pool (one dispatch, one attempt count, one retry after a crash); its
// handler runs once per item.
//
//   chunk task   : u32 count, then count x (u32 length, length bytes)
//   chunk result : u32 count, then count x (u32 code, u32 length, length bytes)
//                  code 0 = the item's result; otherwise a WorkerErrorCode and its message
//
// Integers are little-endian (the host's order: both ends run on one machine). Readers copy
// every length out once and check it against what is left before they touch the bytes, so a
// chunk written by a worker (untrusted) cannot send them out of bounds.

#include <cstddef>      // std::size_t
#include <cstdint>      // std::uint32_t
#include <cstring>      // std::memcpy
#include <string>       // std::string
#include <string_view>  // std::string_view

namespace procpool {

inline constexpr std::size_t kChunkCountSize = sizeof(std::uint32_t);
inline constexpr std::size_t kChunkItemHeader = sizeof(std::uint32_t);
inline constexpr std::size_t kChunkResultHeader = 2 * sizeof(std::uint32_t);

namespace detail {
inline void append_u32(std::string& out, std::uint32_t value) {
  out.append(reinterpret_cast<const char*>(&value), sizeof value);
}
inline bool take_u32(std::string_view& in, std::uint32_t& value) noexcept {
  if (in.size() < sizeof value) return false;
  std::memcpy(&value, in.data(), sizeof value);
  in.remove_prefix(sizeof value);
  return true;
}
}  // namespace detail

// Builds a chunk: begin(), then add() per item. The count is patched in place by add().
class ChunkWriter {
 public:
  explicit ChunkWriter(std::string& out) noexcept : out_(out) {}
  void begin() {
    out_.clear();
    detail::append_u32(out_, 0);
  }
  void add(std::string_view item) {
    detail::append_u32(out_, static_cast<std::uint32_t>(item.size()));
    out_.append(item);
    bump();
  }
  void add_result(std::uint32_t code, std::string_view bytes) {
    detail::append_u32(out_, code);
    detail::append_u32(out_, static_cast<std::uint32_t>(bytes.size()));
    out_.append(bytes);
    if (code != 0) ++failures_;
    bump();
  }
  std::uint32_t count() const noexcept { return count_; }
  // Results added with a non-zero code.
  std::uint32_t failures() const noexcept { return failures_; }
  std::size_t size() const noexcept { return out_.size(); }

 private:
  void bump() noexcept {
    ++count_;
    std::memcpy(out_.data(), &count_, sizeof count_);
  }
  std::string& out_;
  std::uint32_t count_ = 0;
  std::uint32_t failures_ = 0;
};

// Walks a chunk. Every next() is bounds-checked; false at the end or on malformed bytes (then
// malformed() says which). A caller that needs the whole chunk valid before acting on any item
// walks it twice (validate, then use), as the pool does with a worker's answers.
class ChunkReader {
 public:
  explicit ChunkReader(std::string_view chunk) noexcept : rest_(chunk) {
    bad_ = !detail::take_u32(rest_, count_);
  }
  std::uint32_t count() const noexcept { return count_; }
  bool malformed() const noexcept { return bad_ || (read_ == count_ && !rest_.empty()); }
  // True once every announced item was read and nothing is left over.
  bool complete() const noexcept { return !bad_ && read_ == count_ && rest_.empty(); }

  bool next(std::string_view& item) noexcept {
    std::uint32_t length = 0;
    if (bad_ || read_ == count_) return false;
    if (!detail::take_u32(rest_, length) || length > rest_.size()) return fail();
    item = rest_.substr(0, length);
    rest_.remove_prefix(length);
    ++read_;
    return true;
  }
  bool next_result(std::uint32_t& code, std::string_view& bytes) noexcept {
    std::uint32_t length = 0;
    if (bad_ || read_ == count_) return false;
    if (!detail::take_u32(rest_, code) || !detail::take_u32(rest_, length) ||
        length > rest_.size()) {
      return fail();
    }
    bytes = rest_.substr(0, length);
    rest_.remove_prefix(length);
    ++read_;
    return true;
  }

 private:
  bool fail() noexcept {
    bad_ = true;
    return false;
  }
  std::string_view rest_;
  std::uint32_t count_ = 0;
  std::uint32_t read_ = 0;
  bool bad_ = false;
};

}  // namespace procpool
