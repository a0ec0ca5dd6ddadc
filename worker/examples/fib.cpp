// fib: naive recursive Fibonacci of the decimal integer in the input (the docs/workloads.md C1
// task). Handlers: "fib" (= "main").
#include <procpool/worker.hpp>

#include <charconv>   // std::from_chars
#include <stdexcept>  // std::invalid_argument
#include <string>     // std::to_string

#include "fib_function.hpp"  // procpool::examples::fib

int main(int argc, char** argv) {
  procpool::Worker worker(argc, argv);
  auto handler = [](procpool::Task& task) {
    const std::string_view input = task.input();
    std::uint64_t n = 0;
    const auto [end, error] = std::from_chars(input.data(), input.data() + input.size(), n);
    if (error != std::errc() || end != input.data() + input.size() || n > 90) {
      throw std::invalid_argument("fib: expected an integer 0..90, got \"" +
                                  std::string(input.substr(0, 32)) + "\"");
    }
    task.reply(std::to_string(procpool::examples::fib(n)));
  };
  worker.on("fib", handler);
  worker.on("main", handler);
  return worker.run();
}
