// A worker built against the installed procpool::worker. Handler "double": the input, twice.
#include <procpool/worker.hpp>

#include <string>  // std::string

int main(int argc, char** argv) {
  procpool::Worker worker(argc, argv);
  worker.on("double", [](procpool::Task& task) {
    std::string result(task.input());
    result += task.input();
    task.reply(result);
  });
  return worker.run();
}
