#include "supervise_harness.hpp"

#include <fcntl.h>        // pipe2, open
#include <poll.h>         // poll
#include <signal.h>       // SIGKILL
#include <spawn.h>        // posix_spawn
#include <stdlib.h>       // mkdtemp
#include <sys/stat.h>     // chmod
#include <sys/syscall.h>  // SYS_pidfd_open, SYS_pidfd_send_signal
#include <sys/wait.h>     // waitpid
#include <unistd.h>       // close, read

#include <algorithm>   // std::min
#include <cerrno>      // errno
#include <cstring>     // std::strerror
#include <filesystem>  // remove_all
#include <fstream>     // the scripts
#include <stdexcept>   // setup failures

#include <gtest/gtest.h>

extern char** environ;

namespace procpool::supervise_test {

using Clock = std::chrono::steady_clock;

ScriptDir::ScriptDir() {
  std::string pattern =
      (std::filesystem::temp_directory_path() / "procpool-supervise-XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp");
  path_ = pattern;
}

ScriptDir::~ScriptDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

std::string ScriptDir::script(const std::string& name, const std::string& body,
                              bool executable) const {
  const std::string p = file(name);
  std::ofstream out(p);
  out << "#!/bin/sh\nNOTIFY='" << PROCPOOL_TEST_NOTIFY << "'\nDIR='" << path_ << "'\n"
      << body << "\n";
  out.close();
  ::chmod(p.c_str(), executable ? 0700 : 0600);
  return p;
}

SuperviseRun::SuperviseRun(const std::vector<std::string>& args) {
  int out[2], err[2];
  if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) {
    throw std::runtime_error(std::string("pipe2: ") + std::strerror(errno));
  }
  std::vector<std::string> argv_text = {PROCPOOL_BINARY, "supervise"};
  argv_text.insert(argv_text.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& arg : argv_text) argv.push_back(arg.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err[1], 2);
  const int spawned = ::posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(out[1]);
  ::close(err[1]);
  out_fd_ = out[0];
  err_fd_ = err[0];
  if (spawned != 0) {
    ::close(out_fd_);
    ::close(err_fd_);
    throw std::runtime_error(std::string("posix_spawn: ") + std::strerror(spawned));
  }
  pidfd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));
  if (pidfd_ < 0) throw std::runtime_error(std::string("pidfd_open: ") + std::strerror(errno));
}

SuperviseRun::~SuperviseRun() {
  if (!exited_) {
    ::syscall(SYS_pidfd_send_signal, pidfd_, SIGKILL, nullptr, 0);
    ::waitpid(pid_, nullptr, 0);
  }
  for (const int fd : {out_fd_, err_fd_, pidfd_}) {
    if (fd >= 0) ::close(fd);
  }
}

void SuperviseRun::pump(std::chrono::milliseconds wait) {
  pollfd fds[3];
  nfds_t count = 0;
  if (out_fd_ >= 0) fds[count++] = {out_fd_, POLLIN, 0};
  if (err_fd_ >= 0) fds[count++] = {err_fd_, POLLIN, 0};
  if (!exited_) fds[count++] = {pidfd_, POLLIN, 0};
  if (count == 0) return;
  if (::poll(fds, count, static_cast<int>(std::max<long>(wait.count(), 0))) <= 0) return;
  for (nfds_t i = 0; i < count; ++i) {
    if (fds[i].revents == 0) continue;
    if (fds[i].fd == pidfd_) {
      int status = 0;
      if (::waitpid(pid_, &status, 0) == pid_) {
        exited_ = true;
        status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      continue;
    }
    char buffer[16384];
    const ssize_t n = ::read(fds[i].fd, buffer, sizeof buffer);
    int& fd = fds[i].fd == out_fd_ ? out_fd_ : err_fd_;
    std::string& text = fds[i].fd == out_fd_ ? out_ : err_;
    if (n > 0) {
      text.append(buffer, static_cast<std::size_t>(n));
    } else if (n == 0 || errno != EINTR) {
      ::close(fd);
      fd = -1;
    }
  }
}

bool SuperviseRun::wait_for(const std::string& stream, const std::string& text, std::size_t count,
                            std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    if (lines_with(stream == "out" ? out_ : err_, text) >= count) return true;
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    const bool open = (stream == "out" ? out_fd_ : err_fd_) >= 0;
    if (left.count() <= 0 || !open) return false;
    pump(left);
  }
}

bool SuperviseRun::wait_for_err(const std::string& text, std::size_t count,
                                std::chrono::milliseconds timeout) {
  return wait_for("err", text, count, timeout);
}

bool SuperviseRun::wait_for_out(const std::string& text, std::size_t count,
                                std::chrono::milliseconds timeout) {
  return wait_for("out", text, count, timeout);
}

void SuperviseRun::signal(int signal) {
  if (!exited_) ::syscall(SYS_pidfd_send_signal, pidfd_, signal, nullptr, 0);
}

int SuperviseRun::wait_exit(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (!exited_ || out_fd_ >= 0 || err_fd_ >= 0) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      if (!exited_) {
        ::syscall(SYS_pidfd_send_signal, pidfd_, SIGKILL, nullptr, 0);
        ::waitpid(pid_, nullptr, 0);
        exited_ = true;
        status_ = -1;
      }
      return -1;
    }
    pump(left);
  }
  return status_;
}

std::size_t SuperviseRun::err_lines_with(const std::string& text) const {
  return lines_with(err_, text);
}

std::size_t lines_with(const std::string& text, const std::string& needle) {
  std::size_t count = 0;
  std::size_t begin = 0;
  while (begin < text.size()) {
    std::size_t end = text.find('\n', begin);
    if (end == std::string::npos) break;  // a line is counted once it is whole
    if (std::string_view(text).substr(begin, end - begin).find(needle) != std::string_view::npos) {
      ++count;
    }
    begin = end + 1;
  }
  return count;
}

bool wait_gone(pid_t pid, std::chrono::milliseconds timeout) {
  const int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (fd < 0) return errno == ESRCH;
  pollfd pfd{fd, POLLIN, 0};
  const int ready = ::poll(&pfd, 1, static_cast<int>(timeout.count()));
  ::close(fd);
  return ready == 1;
}

}  // namespace procpool::supervise_test
