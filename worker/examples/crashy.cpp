// crashy: misbehaves on request, for tests and for trying out the supervisor.
//
// Start-up options (argv):
//   --exit-before-ready CODE   exit with CODE before announcing handlers (a broken deployment)
//   --hang-before-ready        never announce handlers
//   --exit-after-ready MS      exit 3 about MS milliseconds after starting to serve, idle (a
//                              program that comes up and then falls over: a crash loop)
// Handlers (input = argument):
//   "echo"        answer the input              "segfault"  SIGSEGV
//   "abort"       SIGABRT (std::abort)          "exit"      exit with the decimal code in input
//   "hang"        spin forever (a stuck handler)
//   "sleep"       sleep the input's milliseconds, then answer "slept"; polls Task::cancelled()
//   "throw"       throw std::runtime_error(input)
//   "throw_invalid_argument"  throw std::invalid_argument(input)
//   "throw_failure"  input "CODE MESSAGE": throw procpool::TaskFailure(MESSAGE, CODE)
//   "throw_int"   throw the int in input (not a std::exception)
//   "stderr"      write the input to stderr, then answer "ok"
//   "stdout"      write the input to stdout, then answer "ok"
//   "stderr_flood" write 64 KiB lines to stderr as fast as it can until cancelled (at most 20 s),
//                 then answer how many
//   "attempt"     answer the dispatch attempt number
//   "crash_on_first_attempt"  SIGKILL itself on attempt 1, answer the input afterwards
//   "pid"         answer the worker's pid
//   "ignore_term_and_hang"  ignore SIGTERM, then never return
//   "grandchild"  fork a child that sleeps forever (in the worker's process group); answer its pid
//   "spin_increment"  busy for the worker data's microseconds, then answer the input + 1
//   "alloc"       allocate and keep the input's MiB of heap (touched), answer "ok"
//   "alloc_shared"  map and touch the input's MiB of shared memory (not in RLIMIT_DATA), then hang
//   "child_alloc"  fork a child that allocates and touches the input's MiB, then sleeps (in the
//                 worker's process group); answer its pid once the memory is touched
//   "poison"      SIGSEGV if the input is "poison", else answer it (a poison line in a stream)
//   "fill"        input "BYTES [MS]": sleep MS ms (if given), answer BYTES bytes of 'x'
#include <signal.h>    // raise
#include <sys/mman.h>  // mmap (an inaccessible page to fault on)
#include <unistd.h>    // getpid, fork, pause, write
#include <procpool/worker.hpp>

#include <algorithm>  // std::min
#include <atomic>     // std::atomic (hang)
#include <chrono>     // sleep
#include <cstdio>     // std::fwrite
#include <cstdlib>    // std::abort, std::exit
#include <cstring>    // std::strcmp
#include <memory>     // std::unique_ptr (alloc)
#include <stdexcept>  // std::runtime_error
#include <string>     // std::stoi
#include <thread>     // std::this_thread::sleep_for
#include <vector>     // std::vector (alloc)

// In sanitizer builds, let a crash be the crash it is: AddressSanitizer would otherwise catch the
// SIGSEGV and exit 1 with a report, ThreadSanitizer exit 66 with one. (Only a sanitizer runtime
// calls these.)
extern "C" const char* __asan_default_options() { return "handle_segv=0:handle_abort=0"; }
extern "C" const char* __tsan_default_options() { return "handle_segv=0:handle_abort=0"; }

namespace {

// A real SIGSEGV: a store to a mapped page without access rights (not a null store, which
// UndefinedBehaviorSanitizer would report and exit 1 instead).
[[noreturn]] void segfault() {
  void* page = ::mmap(nullptr, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (page != MAP_FAILED) *static_cast<volatile int*>(page) = 1;
  ::raise(SIGSEGV);  // no page to fault on: the same signal, sent
  std::abort();
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--exit-before-ready") == 0 && i + 1 < argc) {
      std::fprintf(stderr, "crashy: exiting before ready as asked\n");
      return std::atoi(argv[i + 1]);
    }
  }
  procpool::Worker worker(argc, argv);
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--hang-before-ready") == 0) {
      for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));
    }
  }
  worker.on("echo", [](procpool::Task& task) { task.reply(task.input()); });
  worker.on("segfault", [](procpool::Task&) { segfault(); });
  worker.on("abort", [](procpool::Task&) { std::abort(); });
  worker.on("exit", [](procpool::Task& task) { std::exit(std::stoi(std::string(task.input()))); });
  worker.on("hang", [](procpool::Task&) {
    std::atomic<std::uint64_t> spins{0};  // a side effect the compiler cannot remove
    for (;;) spins.fetch_add(1, std::memory_order_relaxed);
  });
  worker.on("sleep", [](procpool::Task& task) {
    const auto until = std::chrono::steady_clock::now() +
                       std::chrono::milliseconds(std::stoll(std::string(task.input())));
    while (std::chrono::steady_clock::now() < until) {
      if (task.cancelled()) throw std::runtime_error("cancelled");
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    task.reply("slept");
  });
  worker.on("throw",
            [](procpool::Task& task) { throw std::runtime_error(std::string(task.input())); });
  worker.on("throw_invalid_argument",
            [](procpool::Task& task) { throw std::invalid_argument(std::string(task.input())); });
  worker.on("throw_failure", [](procpool::Task& task) {
    const std::string input(task.input());
    std::size_t end = 0;
    const long long code = std::stoll(input, &end);
    throw procpool::TaskFailure(input.substr(std::min(end + 1, input.size())), code);
  });
  worker.on("throw_int", [](procpool::Task& task) { throw std::stoi(std::string(task.input())); });
  worker.on("stderr", [](procpool::Task& task) {
    std::fwrite(task.input().data(), 1, task.input().size(), stderr);
    std::fflush(stderr);
    task.reply("ok");
  });
  worker.on("stdout", [](procpool::Task& task) {
    std::fwrite(task.input().data(), 1, task.input().size(), stdout);
    std::fflush(stdout);
    task.reply("ok");
  });
  worker.on("attempt", [](procpool::Task& task) { task.reply(std::to_string(task.attempt())); });
  worker.on("crash_on_first_attempt", [](procpool::Task& task) {
    if (task.attempt() == 1) ::raise(SIGKILL);
    task.reply(task.input());
  });
  worker.on("pid", [](procpool::Task& task) { task.reply(std::to_string(::getpid())); });
  // The chaos workload: busy for the worker data's microseconds (0 if none), then x + 1.
  const long spin_us = worker.data().empty() ? 0 : std::stol(std::string(worker.data()));
  worker.on("spin_increment", [spin_us](procpool::Task& task) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(spin_us);
    while (std::chrono::steady_clock::now() < until) {
    }
    task.reply(std::to_string(std::stoull(std::string(task.input())) + 1));
  });
  worker.on("stderr_flood", [](procpool::Task& task) {  // 64 KiB lines until cancelled (<= 20 s)
    std::string chunk(65535, 'f');  // a pipe's whole buffer per write: it never runs dry
    chunk.push_back('\n');
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    std::uint64_t writes = 0;
    while (!task.cancelled() && std::chrono::steady_clock::now() < until) {
      (void)!::write(STDERR_FILENO, chunk.data(), chunk.size());
      ++writes;
    }
    task.reply(std::to_string(writes));
  });
  worker.on("ignore_term_and_hang", [](procpool::Task&) {
    ::signal(SIGTERM, SIG_IGN);
    for (;;) ::pause();
  });
  worker.on("grandchild", [](procpool::Task& task) {  // forks a child that sleeps; answers its pid
    const pid_t child = ::fork();
    if (child < 0) throw std::runtime_error("fork failed");
    if (child == 0) {
      for (;;) ::pause();
    }
    task.reply(std::to_string(child));
  });
  worker.on("poison", [](procpool::Task& task) {
    if (task.input() == "poison") segfault();
    task.reply(task.input());
  });
  worker.on("fill", [](procpool::Task& task) {  // large results from small inputs
    const std::string input(task.input());
    const std::size_t space = input.find(' ');
    const std::size_t bytes = std::stoull(input.substr(0, space));
    if (space != std::string::npos) {
      std::this_thread::sleep_for(std::chrono::milliseconds(std::stoll(input.substr(space + 1))));
    }
    task.reply(std::string(bytes, 'x'));
  });
  worker.on("alloc", [](procpool::Task& task) {  // keeps the input's MiB of heap, touched
    static std::vector<std::unique_ptr<char[]>> kept;
    const std::size_t bytes = std::stoull(std::string(task.input())) << 20;
    auto block = std::make_unique<char[]>(bytes);  // throws std::bad_alloc at RLIMIT_DATA
    for (std::size_t i = 0; i < bytes; i += 4096) block[i] = 1;
    kept.push_back(std::move(block));
    task.reply("ok");
  });
  worker.on("child_alloc", [](procpool::Task& task) {  // a child holds the input's MiB
    const std::size_t bytes = std::stoull(std::string(task.input())) << 20;
    int ready[2];
    if (::pipe(ready) != 0) throw std::runtime_error("pipe failed");
    const pid_t child = ::fork();
    if (child < 0) throw std::runtime_error("fork failed");
    if (child == 0) {
      auto* memory = static_cast<volatile char*>(
          ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
      if (memory == MAP_FAILED) ::_exit(1);
      for (std::size_t i = 0; i < bytes; i += 4096) memory[i] = 1;
      (void)!::write(ready[1], "x", 1);
      for (;;) ::pause();
    }
    ::close(ready[1]);
    char done = 0;
    (void)!::read(ready[0], &done, 1);
    ::close(ready[0]);
    task.reply(std::to_string(child));
  });
  worker.on("alloc_shared", [](procpool::Task& task) {  // the input's MiB, shared, then hangs
    const std::size_t bytes = std::stoull(std::string(task.input())) << 20;
    void* memory =
        ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (memory == MAP_FAILED) throw std::runtime_error("mmap failed");
    auto* bytes_of = static_cast<volatile char*>(memory);
    for (std::size_t i = 0; i < bytes; i += 4096) bytes_of[i] = 1;
    for (;;) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  });
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], "--exit-after-ready") == 0) {
      // Counted from just before run() announces READY; a worker slower than that to announce
      // exits before READY, which is the same broken start to the supervisor.
      const auto after = std::chrono::milliseconds(std::atol(argv[i + 1]));
      std::thread([after] {
        std::this_thread::sleep_for(after);
        std::fprintf(stderr, "crashy: exiting after ready as asked\n");
        std::fflush(stderr);
        std::_Exit(3);
      }).detach();
    }
  }
  return worker.run();
}
