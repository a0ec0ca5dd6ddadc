#include "daemon_harness.hpp"

#include <fcntl.h>   // open
#include <signal.h>  // kill
#include <spawn.h>   // posix_spawn
#include <sys/stat.h>
#include <sys/wait.h>  // waitpid
#include <unistd.h>

#include <cerrno>
#include <cstring>     // std::strerror
#include <filesystem>  // the directory
#include <fstream>
#include <sstream>
#include <thread>  // sleep_for (poll intervals)

#include <gtest/gtest.h>

namespace procpool::map_test {
namespace {

// The poll interval of the bounded waits, not a synchronisation.
constexpr std::chrono::milliseconds kPoll{10};

}  // namespace

Daemon::Daemon(const std::string& config, const std::string& socket) {
  std::string pattern = ::testing::TempDir() + "procpool-daemon-XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) ADD_FAILURE() << "mkdtemp: " << std::strerror(errno);
  dir_ = pattern;
  socket_ = socket.empty() ? dir_ + "/control.sock" : socket;
  config_path_ = dir_ + "/config.toml";
  stderr_path_ = dir_ + "/stderr.txt";
  std::ofstream(config_path_) << config;
}

Daemon::~Daemon() {
  if (!reaped_) {
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
  }
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

void Daemon::start(const std::vector<std::string>& env, const std::vector<std::string>& options) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 2, stderr_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND,
                                   0600);
  std::vector<std::string> args{PROCPOOL_BINARY, "run", "--socket", socket_};
  args.insert(args.end(), options.begin(), options.end());
  args.push_back(config_path_);
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  std::vector<std::string> entries = environment_with(env);
  std::vector<char*> envp;
  for (std::string& entry : entries) envp.push_back(entry.data());
  envp.push_back(nullptr);
  const int spawned = ::posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  ASSERT_EQ(spawned, 0) << std::strerror(spawned);
  reaped_ = false;
}

bool Daemon::wait_serving() {
  const auto deadline = Clock::now() + std::chrono::seconds(20);
  while (Clock::now() < deadline) {
    if (cli({"status"}).exit_code == 0) return true;
    if (reaped_) return false;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      reaped_ = true;
      return false;
    }
    std::this_thread::sleep_for(kPoll);
  }
  return false;
}

Result Daemon::cli(std::vector<std::string> args) {
  args.push_back("--socket");
  args.push_back(socket_);
  return run_procpool(args);
}

boost::json::value Daemon::status(const std::string& name) {
  std::vector<std::string> args{"status", "--json"};
  if (!name.empty()) args.push_back(name);
  const Result run = cli(args);
  if (run.exit_code != 0) return nullptr;
  boost::system::error_code code;
  boost::json::value value = boost::json::parse(run.out, code);
  return code ? boost::json::value(nullptr) : value;
}

boost::json::object Daemon::instance(const std::string& instance) {
  const boost::json::value all = status();
  if (!all.is_object()) return {};
  for (const boost::json::value& entry : all.as_object().at("programs").as_array()) {
    if (entry.as_object().at("name").as_string() == instance) return entry.as_object();
  }
  return {};
}

bool Daemon::wait_state(const std::string& name, const std::string& state) {
  const auto deadline = Clock::now() + std::chrono::seconds(20);
  while (Clock::now() < deadline) {
    const boost::json::object entry = instance(name);
    if (entry.contains("state") && entry.at("state").as_string() == state) return true;
    std::this_thread::sleep_for(kPoll);
  }
  return false;
}

std::optional<int> Daemon::wait_exit(std::chrono::milliseconds bound) {
  if (reaped_) return std::nullopt;
  const auto deadline = Clock::now() + bound;
  while (Clock::now() < deadline) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      reaped_ = true;
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    std::this_thread::sleep_for(kPoll);
  }
  return std::nullopt;
}

void Daemon::signal(int sig) {
  if (!reaped_) ::kill(pid_, sig);
}

std::string Daemon::stderr_text() const {
  std::ifstream in(stderr_path_);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

bool wait_gone(pid_t pid, std::chrono::milliseconds bound) {
  const auto deadline = Clock::now() + bound;
  while (Clock::now() < deadline) {
    if (::kill(pid, 0) != 0 && errno == ESRCH) return true;
    // Dead but not reaped (its new parent may never reap it): gone as far as running goes.
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string text;
    std::getline(stat, text);
    const std::size_t paren = text.rfind(')');
    if (paren != std::string::npos && paren + 2 < text.size() && text[paren + 2] == 'Z')
      return true;
    std::this_thread::sleep_for(kPoll);
  }
  return false;
}

void touch(const std::string& path) { std::ofstream(path) << "go\n"; }

std::string gated_program(const std::string& name, const std::string& gate,
                          const std::string& extra) {
  return "[[program]]\nname = \"" + name +
         "\"\ncommand = \"/bin/sh\"\nargs = [\"-c\", \"while [ ! -e '" + gate +
         "' ]; do sleep 0.01; done; exec '" + PROCPOOL_TEST_NOTIFY +
         "' READY=1 --pause\"]\nreadiness = \"notify\"\n" + extra;
}

std::string sleeper(const std::string& name, const std::string& extra) {
  return "[[program]]\nname = \"" + name +
         "\"\ncommand = \"/bin/sh\"\nargs = [\"-c\", \"exec sleep 3600\"]\n" + extra;
}

}  // namespace procpool::map_test
