#pragma once

// Little-endian integers in a fuzz input: ByteSource reads them from the input the fuzzer gave
// (reading zeros once the input is used up, so every input means something), ByteSink appends
// them when the corpus generator writes a seed in the same format.

#include <cstddef>  // std::byte, std::size_t
#include <cstdint>  // fixed-width integers
#include <span>     // std::span
#include <vector>   // std::vector

namespace procpool::fuzz {

class ByteSource {
 public:
  explicit ByteSource(std::span<const std::byte> input) noexcept : input_(input) {}

  bool empty() const noexcept { return input_.empty(); }

  // Up to `count` bytes (fewer at the end of the input), consumed.
  std::span<const std::byte> take(std::size_t count) noexcept {
    const std::size_t n = count < input_.size() ? count : input_.size();
    const std::span<const std::byte> taken = input_.first(n);
    input_ = input_.subspan(n);
    return taken;
  }

  std::uint8_t u8() noexcept { return static_cast<std::uint8_t>(integer(1)); }
  std::uint16_t u16() noexcept { return static_cast<std::uint16_t>(integer(2)); }
  std::uint32_t u32() noexcept { return static_cast<std::uint32_t>(integer(4)); }
  std::uint64_t u64() noexcept { return integer(8); }

 private:
  std::uint64_t integer(std::size_t width) noexcept {
    const std::span<const std::byte> bytes = take(width);
    std::uint64_t value = 0;
    for (std::size_t i = 0; i < bytes.size(); ++i) {
      value |= std::uint64_t{static_cast<std::uint8_t>(bytes[i])} << (8 * i);
    }
    return value;
  }

  std::span<const std::byte> input_;
};

class ByteSink {
 public:
  void bytes(std::span<const std::byte> data) { out_.insert(out_.end(), data.begin(), data.end()); }
  void u8(std::uint8_t value) { integer(value, 1); }
  void u16(std::uint16_t value) { integer(value, 2); }
  void u32(std::uint32_t value) { integer(value, 4); }
  void u64(std::uint64_t value) { integer(value, 8); }

  const std::vector<std::byte>& data() const noexcept { return out_; }

 private:
  void integer(std::uint64_t value, std::size_t width) {
    for (std::size_t i = 0; i < width; ++i)
      out_.push_back(static_cast<std::byte>(value >> (8 * i)));
  }

  std::vector<std::byte> out_;
};

}  // namespace procpool::fuzz
