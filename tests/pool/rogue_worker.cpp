// rogue_worker: a worker that attacks its own supervisor on request, for pool_rogue_test.cpp.
//
// It serves through the SDK like any worker ("echo", "pid"). Its other handlers misbehave through
// a second mapping of its own segment (the fd the supervisor passed, attached again): they
// scribble random bytes over the result ring, the control block or the header, lie about record
// lengths and ring positions, send malformed frames, send result fragments without end, or flood
// the doorbell and the futexes.
//
// A misbehaving handler first writes "rogue <pid>: <handler> <input>" to stderr (so a crash
// report can be matched to the process that misbehaved); a ring misbehaviour then waits until the
// supervisor has read everything published so far. It misbehaves, rings its doorbell so the
// supervisor looks, and waits to be killed: at most kParkLimit, after which it exits 4 ("not
// detected"). Randomness comes from a seed in the input, so a failing seed reproduces.
//
// Handlers (input):
//   "echo" (any)               answer the input
//   "pid" (any)                answer the worker's pid
//   "scribble_ring" SEED       random bytes over the result ring's records and/or its positions
//   "lie_length" SEED          a record header larger than the ring allows or than what was
//                              published, or padding that does not end at the ring's end
//   "move_back" SEED           the result ring's write position backwards or misaligned, or the
//                              task ring's read position beyond what was published or misaligned
//   "scribble_control" SEED    random values in every control-block field, the heartbeat random,
//                              0 or in the far future, the running task's id random or 0; again
//                              every millisecond
//   "scribble_all" SEED        random bytes over the whole segment (header, control block, both
//                              rings and their positions); again every millisecond
//   "scribble_arena" SEED      random bytes over the segment header, which the
//                              supervisor never reads back; then answers "scribbled <pid>"
//   "bad_frame" "KIND SEED"    one well-formed ring record holding a bad frame; KIND: version,
//                              type, flags, length, short, stranger (an answer for a task not on
//                              board), duplicate (answers its task twice, the first time
//                              "first <pid>"), worker_type (a frame type only the supervisor
//                              sends), ready (a second READY), error_body (a malformed error
//                              payload), interleave (result fragments of two tasks),
//                              chunk_flag (a chunked answer to a plain task), chunk_body (run as
//                              the one item of a chunk: a malformed chunked answer)
//   "fragment_bomb" SEED       result fragments (kFrameMore) of its task, without end
//   "flood" "MODE MS"          MODE doorbell: write the doorbell eventfd in a tight loop; futex:
//                              FUTEX_WAKE every ring futex in a tight loop; for MS milliseconds,
//                              then answer "flooded <count>"
//
// The attacks live in rogue_*_attack(s).cpp, one family per file (rogue_attacks.hpp).

#include <unistd.h>             // getpid
#include <procpool/worker.hpp>  // procpool::Worker, procpool::Task

#include <chrono>   // std::chrono::milliseconds
#include <cstdint>  // std::uint64_t
#include <random>   // std::mt19937_64
#include <sstream>  // std::istringstream
#include <string>   // std::string

#include "rogue_attacks.hpp"
#include "rogue_channel.hpp"  // Channel, announce, seed_of

using namespace rogue;

int main(int argc, char** argv) {
  procpool::Worker worker(argc, argv);
  Channel channel;

  worker.on("echo", [](procpool::Task& task) { task.reply(task.input()); });
  worker.on("pid", [](procpool::Task& task) { task.reply(std::to_string(::getpid())); });
  worker.on("scribble_ring", [&](procpool::Task& task) {
    announce("scribble_ring", task.input());
    std::mt19937_64 rng(seed_of(task.input()));
    scribble_ring(channel, rng);
  });
  worker.on("lie_length", [&](procpool::Task& task) {
    announce("lie_length", task.input());
    std::mt19937_64 rng(seed_of(task.input()));
    lie_length(channel, rng);
  });
  worker.on("move_back", [&](procpool::Task& task) {
    announce("move_back", task.input());
    std::mt19937_64 rng(seed_of(task.input()));
    move_back(channel, rng);
  });
  worker.on("scribble_control", [&](procpool::Task& task) {
    announce("scribble_control", task.input());
    std::mt19937_64 rng(seed_of(task.input()));
    scribble_control(channel, rng);
  });
  worker.on("scribble_all", [&](procpool::Task& task) {
    announce("scribble_all", task.input());
    std::mt19937_64 rng(seed_of(task.input()));
    scribble_all(channel, rng);
  });
  worker.on("scribble_arena", [&](procpool::Task& task) {
    announce("scribble_arena", task.input());
    std::mt19937_64 rng(seed_of(task.input()));
    scribble_arena(channel, rng);
    task.reply("scribbled " + std::to_string(::getpid()));
  });
  worker.on("bad_frame", [&](procpool::Task& task) {
    announce("bad_frame", task.input());
    std::istringstream in{std::string(task.input())};
    std::string kind;
    std::uint64_t seed = 0;
    in >> kind >> seed;
    std::mt19937_64 rng(seed);
    bad_frame(channel, kind, task.id(), rng);
  });
  worker.on("fragment_bomb", [&](procpool::Task& task) {
    announce("fragment_bomb", task.input());
    std::mt19937_64 rng(seed_of(task.input()));
    fragment_bomb(channel, task.id(), rng);
  });
  worker.on("flood", [&](procpool::Task& task) {
    announce("flood", task.input());
    std::istringstream in{std::string(task.input())};
    std::string mode;
    long milliseconds = 0;
    in >> mode >> milliseconds;
    task.reply("flooded " +
               std::to_string(flood(channel, mode, std::chrono::milliseconds(milliseconds))));
  });
  return worker.run();
}
