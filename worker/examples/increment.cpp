// increment: the docs/workloads.md L1/T1/M1 task. Handlers: "increment" (= "main"): decimal x ->
// decimal x + 1; "increment_u64": 8-byte little-endian x -> 8-byte x + 1.
#include <procpool/worker.hpp>

#include <charconv>   // std::from_chars, std::to_chars
#include <cstring>    // std::memcpy
#include <stdexcept>  // std::invalid_argument
#include <string>     // std::string

int main(int argc, char** argv) {
  procpool::Worker worker(argc, argv);
  auto decimal = [](procpool::Task& task) {
    const std::string_view input = task.input();
    std::uint64_t x = 0;
    const auto [end, error] = std::from_chars(input.data(), input.data() + input.size(), x);
    if (error != std::errc() || end != input.data() + input.size()) {
      throw std::invalid_argument("increment: not an unsigned integer: \"" +
                                  std::string(input.substr(0, 32)) + "\"");
    }
    char out[24];
    const auto result = std::to_chars(out, out + sizeof out, x + 1);
    task.reply(std::string_view(out, static_cast<std::size_t>(result.ptr - out)));
  };
  worker.on("increment", decimal);
  worker.on("main", decimal);
  worker.on("increment_u64", [](procpool::Task& task) {
    std::uint64_t x = 0;
    if (task.input().size() != sizeof x) throw std::invalid_argument("increment_u64: 8 bytes");
    std::memcpy(&x, task.input().data(), sizeof x);
    ++x;
    task.reply(std::string_view(reinterpret_cast<const char*>(&x), sizeof x));
  });
  return worker.run();
}
