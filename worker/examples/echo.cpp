// echo: answers every task with its input. Handlers: "echo" (= "main"), "data" (the pool's
// worker data), "length" (the input's size in bytes, as decimal text).
#include <procpool/worker.hpp>

#include <string>  // std::to_string

int main(int argc, char** argv) {
  procpool::Worker worker(argc, argv);
  auto echo = [](procpool::Task& task) { task.reply(task.input()); };
  worker.on("echo", echo);
  worker.on("main", echo);
  worker.on("data", [&worker](procpool::Task& task) { task.reply(worker.data()); });
  worker.on("length",
            [](procpool::Task& task) { task.reply(std::to_string(task.input().size())); });
  return worker.run();
}
