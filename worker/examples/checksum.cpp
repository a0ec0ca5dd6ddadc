// checksum: the docs/workloads.md B1 task. The sum, modulo 2^64, of the input's little-endian
// 64-bit words (input length a multiple of 8), as decimal text. Handlers:
//   "checksum" (= "main")  the sum of the input's words
//   "checksum_shared"      input "OFFSET LENGTH": the sum of those bytes of the pool's shared
//                          memory (PoolOptions::shared_memory_size), summed in place: no copy
//   "fill_shared"          input "OFFSET LENGTH BYTE": sets those bytes of the shared memory to
//                          BYTE (0-255); answers "filled"
#include <procpool/worker.hpp>

#include <charconv>   // std::from_chars
#include <cstddef>    // std::byte
#include <cstring>    // std::memcpy, std::memset
#include <span>       // std::span
#include <stdexcept>  // std::invalid_argument
#include <string>     // std::to_string
#include <vector>     // std::vector

#include "checksum_function.hpp"  // procpool::examples::checksum_words

namespace {

std::uint64_t checksum(const std::byte* data, std::size_t size) {
  if (size % 8 != 0) throw std::invalid_argument("checksum: length not a multiple of 8");
  return procpool::examples::checksum_words(data, size);
}

// "N N ..." -> the numbers; throws on anything else.
std::vector<std::uint64_t> numbers(std::string_view text, std::size_t count) {
  std::vector<std::uint64_t> out;
  const char* at = text.data();
  const char* end = text.data() + text.size();
  while (out.size() < count) {
    if (!out.empty()) {
      if (at == end || *at != ' ') break;
      ++at;
    }
    std::uint64_t value = 0;
    const auto [next, error] = std::from_chars(at, end, value);
    if (error != std::errc()) break;
    out.push_back(value);
    at = next;
  }
  if (out.size() != count || at != end) {
    throw std::invalid_argument("expected " + std::to_string(count) + " numbers, got \"" +
                                std::string(text.substr(0, 64)) + "\"");
  }
  return out;
}

// The bytes [offset, offset + length) of the shared memory, bounds-checked.
std::span<std::byte> shared_range(const procpool::Worker& worker, std::uint64_t offset,
                                  std::uint64_t length) {
  const std::span<std::byte> shared = worker.shared_memory();
  if (offset > shared.size() || length > shared.size() - offset) {
    throw std::invalid_argument("range [" + std::to_string(offset) + ", +" +
                                std::to_string(length) + ") is outside the shared memory (" +
                                std::to_string(shared.size()) + " bytes)");
  }
  return shared.subspan(offset, length);
}

}  // namespace

int main(int argc, char** argv) {
  procpool::Worker worker(argc, argv);
  auto handler = [](procpool::Task& task) {
    const std::string_view input = task.input();
    task.reply(
        std::to_string(checksum(reinterpret_cast<const std::byte*>(input.data()), input.size())));
  };
  worker.on("checksum", handler);
  worker.on("main", handler);
  worker.on("checksum_shared", [&worker](procpool::Task& task) {
    const auto n = numbers(task.input(), 2);
    const std::span<std::byte> range = shared_range(worker, n[0], n[1]);
    task.reply(std::to_string(checksum(range.data(), range.size())));
  });
  worker.on("fill_shared", [&worker](procpool::Task& task) {
    const auto n = numbers(task.input(), 3);
    if (n[2] > 255) throw std::invalid_argument("fill_shared: BYTE above 255");
    const std::span<std::byte> range = shared_range(worker, n[0], n[1]);
    std::memset(range.data(), static_cast<int>(n[2]), range.size());
    task.reply("filled");
  });
  return worker.run();
}
