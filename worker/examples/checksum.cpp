// checksum: the WORKLOADS.md B1 task. The sum, modulo 2^64, of the input's little-endian 64-bit
// words (input length a multiple of 8), as decimal text. Handlers: "checksum" (= "main").
#include <procpool/worker.hpp>

#include <cstring>    // std::memcpy
#include <stdexcept>  // std::invalid_argument
#include <string>     // std::to_string

int main(int argc, char** argv) {
  procpool::Worker worker(argc, argv);
  auto handler = [](procpool::Task& task) {
    const std::string_view input = task.input();
    if (input.size() % 8 != 0) throw std::invalid_argument("checksum: length not a multiple of 8");
    std::uint64_t sum = 0;
    for (std::size_t i = 0; i < input.size(); i += 8) {
      std::uint64_t word;
      std::memcpy(&word, input.data() + i, 8);
      sum += word;
    }
    task.reply(std::to_string(sum));
  };
  worker.on("checksum", handler);
  worker.on("main", handler);
  return worker.run();
}
