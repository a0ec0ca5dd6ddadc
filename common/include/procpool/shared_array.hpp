#pragma once
#include "procpool/detail/require_cxx20.hpp"

// procpool::SharedArray<T>: counters and flags in shared memory (a named region, the pool's
// shared memory) without reinterpreting bytes by hand: the Atomics of a SharedArrayBuffer.
//
//   procpool::SharedArray<std::uint64_t> counters(pool.region("counters"));
//   counters.at(0).store(123);                  // the host
//   counters.at(0).fetch_add(1);                // a worker, on the same region
//
// Every element is reached through std::atomic_ref, lock-free by construction (a static_assert),
// so no process can die holding a lock in it. Another process may change any element at any
// time: read a value once into a local, then check it.

#include <atomic>       // std::atomic_ref
#include <cstddef>      // std::byte, std::size_t
#include <cstdint>      // std::uintptr_t
#include <span>         // std::span
#include <string>       // messages
#include <type_traits>  // std::is_integral_v

#include "procpool/error.hpp"

namespace procpool {

template <class T>
class SharedArray {
  static_assert(std::is_integral_v<T> || std::is_enum_v<T>,
                "SharedArray holds integers (counters, flags, offsets)");
  static_assert(std::atomic_ref<T>::is_always_lock_free,
                "a lock inside shared memory can be held by a process that died");

 public:
  // A view of `bytes` as bytes.size() / sizeof(T) elements. Throws procpool::Error if `bytes`
  // is not aligned for std::atomic_ref<T> (regions are page-aligned: offsets must be multiples).
  explicit SharedArray(std::span<std::byte> bytes)
      : data_(reinterpret_cast<T*>(bytes.data())), size_(bytes.size() / sizeof(T)) {
    if (reinterpret_cast<std::uintptr_t>(bytes.data()) % std::atomic_ref<T>::required_alignment !=
        0) {
      throw Error("procpool::SharedArray: the bytes are not aligned to " +
                  std::to_string(std::atomic_ref<T>::required_alignment));
    }
  }

  std::size_t size() const noexcept { return size_; }

  // Element `index`; throws procpool::Error past the end.
  std::atomic_ref<T> at(std::size_t index) const {
    if (index >= size_) {
      throw Error("procpool::SharedArray: index " + std::to_string(index) + " is past its " +
                  std::to_string(size_) + " elements");
    }
    return std::atomic_ref<T>(data_[index]);
  }

 private:
  T* data_;
  std::size_t size_;
};

}  // namespace procpool
