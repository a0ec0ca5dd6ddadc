// Streamed results (docs/dataplane.md, "Streamed results"): handlers that report progress with
// Task::emit before their reply. progress_host.cpp is a host that shows the stream.
//
//   count "N [BYTES]"      emits N reports "i/N" (padded to BYTES bytes), replies "counted N"
//   crash_midway "N"       attempt 1 emits N/2 reports and dies of SIGKILL; later attempts emit
//                          all N and reply "counted N"
//   emit_until_cancelled   emits "tick" every millisecond until cancelled (at most 20 s)
//   streams                replies "yes" if the submitter listens for progress, else "no"
//   report_then_sleep "MS TEXT"  emits TEXT, sleeps MS milliseconds, replies "slept"
#include <signal.h>  // raise, SIGKILL

#include <chrono>  // the tick
#include <string>  // reports
#include <thread>  // std::this_thread::sleep_for

#include "procpool/worker.hpp"

namespace {

struct CountRequest {
  long count = 0;
  std::size_t bytes = 0;
};

CountRequest parse(std::string_view input) {
  const std::string text(input);
  std::size_t end = 0;
  CountRequest request;
  request.count = std::stol(text, &end);
  if (end < text.size()) request.bytes = std::stoul(text.substr(end));
  return request;
}

void emit_reports(procpool::Task& task, long from, long to, long total, std::size_t bytes) {
  std::string report;
  for (long i = from; i <= to; ++i) {
    report = std::to_string(i) + "/" + std::to_string(total);
    if (report.size() < bytes) report.resize(bytes, '.');
    task.emit(report);
  }
}

}  // namespace

int main(int argc, char** argv) {
  procpool::Worker worker(argc, argv);
  worker.on("count", [](procpool::Task& task) {
    const CountRequest request = parse(task.input());
    if (task.streams_progress()) emit_reports(task, 1, request.count, request.count, request.bytes);
    task.reply("counted " + std::to_string(request.count));
  });
  worker.on("crash_midway", [](procpool::Task& task) {
    const long count = parse(task.input()).count;
    if (task.attempt() == 1) {
      emit_reports(task, 1, count / 2, count, 0);
      ::raise(SIGKILL);
    }
    emit_reports(task, 1, count, count, 0);
    task.reply("counted " + std::to_string(count));
  });
  worker.on("emit_until_cancelled", [](procpool::Task& task) {
    for (int i = 0; i < 20'000 && !task.cancelled(); ++i) {
      task.emit("tick");
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    task.reply("stopped");
  });
  worker.on("report_then_sleep", [](procpool::Task& task) {
    const std::string input(task.input());
    const std::size_t space = input.find(' ');
    task.emit(space == std::string::npos ? std::string_view() : task.input().substr(space + 1));
    std::this_thread::sleep_for(std::chrono::milliseconds(std::stol(input)));
    task.reply("slept");
  });
  worker.on("streams",
            [](procpool::Task& task) { task.reply(task.streams_progress() ? "yes" : "no"); });
  return worker.run();
}
