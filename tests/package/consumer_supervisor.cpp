// Supervises one short shell program through procpool::Supervisor built against the installed
// procpool::supervisor, the way the README shows it, and checks that its output line and its
// exit arrive. Exit 0 on success, 1 otherwise.
#include <procpool/supervisor.hpp>

#include <chrono>              // timeouts
#include <condition_variable>  // waiting for the exit
#include <exception>           // std::exception
#include <iostream>            // std::cout, std::cerr
#include <mutex>               // the shared flags
#include <string>              // std::string

int main() {
  try {
    std::mutex mu;
    std::condition_variable changed;
    bool stopped = false;
    std::string line_seen;
    procpool::Supervisor supervisor({.on_event = [&](const procpool::SupervisorEvent& event) {
      if (event.kind != procpool::SupervisorEvent::Kind::Stopped) return;
      const std::lock_guard lock(mu);
      stopped = true;
      changed.notify_all();
    }});
    procpool::ProgramSpec hello;
    hello.name = "hello";
    hello.command = "/bin/sh";
    hello.args = {"-c", "echo hello from $0"};
    hello.restart_mode = procpool::RestartMode::Never;
    hello.stdout_sink.fd = -1;
    hello.stdout_sink.on_line = [&](std::string_view, std::string_view line) {
      const std::lock_guard lock(mu);
      line_seen = std::string(line);
    };
    supervisor.add(hello);
    supervisor.start("hello");
    std::unique_lock lock(mu);
    if (!changed.wait_for(lock, std::chrono::seconds(30), [&] { return stopped; })) {
      std::cerr << "consumer_supervisor: the program did not stop within 30 s\n";
      return 1;
    }
    if (line_seen.rfind("hello from", 0) != 0) {
      std::cerr << "consumer_supervisor: its output line was \"" << line_seen << "\"\n";
      return 1;
    }
    std::cout << "consumer_supervisor: \"" << line_seen << "\"\n";
    return 0;
  } catch (const std::exception& error) {
    std::cerr << "consumer_supervisor: " << error.what() << '\n';
    return 1;
  }
}
