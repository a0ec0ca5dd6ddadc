// Runs consumer_worker in a procpool::Pool built against the installed procpool::supervisor and
// checks that "double" turns "ab" into "abab". Exit 0 on success, 1 otherwise.
//
// Usage: consumer_main PATH-TO-consumer_worker
#include <procpool/pool.hpp>

#include <exception>  // std::exception
#include <iostream>   // std::cout, std::cerr
#include <string>     // std::string

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: consumer_main PATH-TO-consumer_worker\n";
    return 1;
  }
  try {
    procpool::PoolOptions options;
    options.executable = argv[1];
    options.min_workers = 1;
    procpool::Pool pool(options);
    const std::string result = pool.submit("double", "ab").get();
    pool.shutdown();
    if (result != "abab") {
      std::cerr << "consumer_main: \"double\" of \"ab\" gave \"" << result
                << "\", expected \"abab\"\n";
      return 1;
    }
    std::cout << "consumer_main: \"ab\" -> \"" << result << "\"\n";
    return 0;
  } catch (const std::exception& error) {
    std::cerr << "consumer_main: " << error.what() << '\n';
    return 1;
  }
}
