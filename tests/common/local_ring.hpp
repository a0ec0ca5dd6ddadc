#pragma once

// A ring in ordinary (heap) memory for single-process tests. The record area is allocated with
// exactly `capacity` bytes so that AddressSanitizer catches any read past its end.

#include <cstddef>  // std::byte
#include <memory>   // std::unique_ptr
#include <new>      // std::align_val_t

#include "procpool/ring_data.hpp"
#include "procpool/ring_reader.hpp"
#include "procpool/ring_writer.hpp"

namespace procpool::test {

class LocalRing {
 public:
  explicit LocalRing(std::size_t capacity)
      : capacity_(capacity),
        bytes_(static_cast<std::byte*>(::operator new (capacity, std::align_val_t{64}))) {}
  ~LocalRing() { ::operator delete (bytes_, std::align_val_t{64}); }
  LocalRing(const LocalRing&) = delete;
  LocalRing& operator=(const LocalRing&) = delete;

  RingData& data() noexcept { return data_; }
  std::span<std::byte> bytes() noexcept { return {bytes_, capacity_}; }
  RingWriter writer() noexcept { return {data_, bytes()}; }
  RingReader reader() noexcept { return {data_, bytes()}; }

 private:
  RingData data_;
  std::size_t capacity_;
  std::byte* bytes_;
};

}  // namespace procpool::test
