#pragma once

// What the Supervisor tests share: a private temp dir for the shell scripts they run, recorders
// of SupervisorEvents and of output lines that tests wait on (condition variable, bounded), and
// the paths of procpool-test-notify and procpool-test-listener.

#include <gtest/gtest.h>
#include <poll.h>         // poll
#include <signal.h>       // kill
#include <sys/stat.h>     // chmod
#include <sys/syscall.h>  // SYS_pidfd_open
#include <unistd.h>       // mkdtemp

#include <cerrno>              // errno
#include <chrono>              // std::chrono
#include <condition_variable>  // std::condition_variable
#include <cstdlib>             // mkdtemp
#include <filesystem>          // std::filesystem
#include <fstream>             // std::ofstream
#include <functional>          // std::function
#include <mutex>               // std::mutex
#include <string>              // std::string
#include <string_view>         // std::string_view
#include <vector>              // std::vector

#include "../common/test_timing.hpp"
#include "procpool/supervisor.hpp"

namespace procpool::test {

using namespace std::chrono_literals;

// Generous: every wait ends as soon as its event arrives.
inline constexpr std::chrono::milliseconds kEventTimeout = scaled(std::chrono::milliseconds(20000));

inline std::string notify_helper() { return PROCPOOL_TEST_NOTIFY; }
// procpool-test-listener PORT: listens on 127.0.0.1:PORT with SO_REUSEPORT until signalled.
inline std::string listener_helper() { return PROCPOOL_TEST_LISTENER; }

class ScriptDir {
 public:
  ScriptDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "procpool-sup-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp");
    path_ = pattern;
  }
  ~ScriptDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  ScriptDir(const ScriptDir&) = delete;
  ScriptDir& operator=(const ScriptDir&) = delete;

  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

  // A /bin/sh script; $NOTIFY is procpool-test-notify, $DIR this directory.
  std::string script(const std::string& name, const std::string& body) const {
    const std::string p = file(name);
    std::ofstream out(p);
    out << "#!/bin/sh\nNOTIFY='" << notify_helper() << "'\nDIR='" << path_ << "'\n" << body << "\n";
    out.close();
    ::chmod(p.c_str(), 0700);
    return p;
  }

 private:
  std::string path_;
};

// Every event, in order, for the tests to wait on.
class EventLog {
 public:
  std::function<void(const SupervisorEvent&)> callback() {
    return [this](const SupervisorEvent& event) {
      const std::lock_guard lock(mutex_);
      events_.push_back(event);
      cv_.notify_all();
    };
  }

  // Waits until `count` events of `kind` (for `name`, if not empty) have been recorded; returns
  // the last of them, or fails the test.
  SupervisorEvent wait_for(SupervisorEvent::Kind kind, std::size_t count = 1,
                           const std::string& name = {},
                           std::chrono::milliseconds timeout = kEventTimeout) {
    std::unique_lock lock(mutex_);
    SupervisorEvent found;
    const bool ok = cv_.wait_for(lock, timeout, [&] {
      std::size_t n = 0;
      for (const auto& e : events_) {
        if (e.kind == kind && (name.empty() || e.name == name) && ++n == count) {
          found = e;
          return true;
        }
      }
      return false;
    });
    EXPECT_TRUE(ok) << "timed out waiting for " << count << " x " << to_string(kind)
                    << "; events: " << describe_locked();
    return found;
  }

  std::vector<SupervisorEvent> events() const {
    const std::lock_guard lock(mutex_);
    return events_;
  }

  std::size_t count(SupervisorEvent::Kind kind) const {
    const std::lock_guard lock(mutex_);
    std::size_t n = 0;
    for (const auto& e : events_) n += e.kind == kind ? 1 : 0;
    return n;
  }

  std::string describe() const {
    const std::lock_guard lock(mutex_);
    return describe_locked();
  }

 private:
  std::string describe_locked() const {
    std::string out;
    for (const auto& e : events_) out += std::string(to_string(e.kind)) + " ";
    return out;
  }

  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<SupervisorEvent> events_;
};

// Every line an instance printed (OutputSink::on_line), for the tests to wait on.
class LineLog {
 public:
  std::function<void(std::string_view, std::string_view)> callback() {
    return [this](std::string_view, std::string_view line) {
      const std::lock_guard lock(mutex_);
      lines_.emplace_back(line);
      cv_.notify_all();
    };
  }

  // Waits until a line starting with `prefix` has been printed; returns the rest of it, or
  // fails the test and returns "".
  std::string wait_for(const std::string& prefix,
                       std::chrono::milliseconds timeout = kEventTimeout) {
    std::unique_lock lock(mutex_);
    std::string rest;
    const bool ok = cv_.wait_for(lock, timeout, [&] {
      for (const auto& line : lines_) {
        if (line.rfind(prefix, 0) == 0) {
          rest = line.substr(prefix.size());
          return true;
        }
      }
      return false;
    });
    EXPECT_TRUE(ok) << "timed out waiting for a line \"" << prefix << "...\"";
    return rest;
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<std::string> lines_;
};

inline bool process_exists(int pid) { return pid > 0 && (::kill(pid, 0) == 0 || errno == EPERM); }

// Waits (bounded, on a pidfd, no polling loop) until `pid` has exited; true if it has.
inline bool wait_gone(int pid, std::chrono::milliseconds timeout = kEventTimeout) {
  const int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (fd < 0) return errno == ESRCH;
  pollfd pfd{fd, POLLIN, 0};
  const int r = ::poll(&pfd, 1, static_cast<int>(timeout.count()));
  ::close(fd);
  return r == 1;
}

// A spec for `command` with the defaults a user gets (output copied to the test's stdout and
// stderr).
inline ProgramSpec spec_for(const std::string& name, const std::string& command) {
  ProgramSpec spec;
  spec.name = name;
  spec.command = command;
  return spec;
}

}  // namespace procpool::test
