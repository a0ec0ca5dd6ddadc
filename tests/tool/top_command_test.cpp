// `procpool top` in a real terminal: tmux runs it in a detached session on a server of the
// test's own (-S, in the daemon's private directory), and the test reads the screen with
// capture-pane. The table follows the daemon live, and q quits.

#include <signal.h>  // SIGKILL

#include <string>
#include <thread>  // sleep_for (poll intervals)

#include <gtest/gtest.h>

#include "daemon_harness.hpp"

namespace procpool::map_test {
namespace {

class Tmux {
 public:
  explicit Tmux(std::string socket) : socket_(std::move(socket)) {}
  ~Tmux() { (void)run({"kill-server"}); }
  Tmux(const Tmux&) = delete;
  Tmux& operator=(const Tmux&) = delete;

  Result run(std::vector<std::string> args) const {
    std::vector<std::string> argv{"/usr/bin/tmux", "-S", socket_};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_program(argv);
  }
  std::string screen() const { return run({"capture-pane", "-p", "-t", "top"}).out; }
  // Polls the screen until it shows `text` (bounded); the screen last seen.
  std::string wait_for(const std::string& text) const {
    std::string shown;
    for (int i = 0; i < 1000; ++i) {
      shown = screen();
      if (shown.find(text) != std::string::npos) return shown;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ADD_FAILURE() << "the screen never showed \"" << text << "\":\n" << shown;
    return shown;
  }
  bool running() const { return run({"has-session", "-t", "top"}).exit_code == 0; }

 private:
  std::string socket_;
};

TEST(Top, ShowsTheDaemonLiveInATerminalAndQuitsOnQ) {
  Daemon daemon(sleeper("web", "numprocs = 2\n"));
  daemon.start();
  ASSERT_TRUE(daemon.wait_serving()) << daemon.stderr_text();
  ASSERT_TRUE(daemon.wait_state("web:1", "ready"));
  const Tmux tmux(daemon.dir() + "/tmux.sock");
  const std::string command = std::string(PROCPOOL_BINARY) + " top --socket " + daemon.socket();
  const Result started =
      tmux.run({"new-session", "-d", "-s", "top", "-x", "120", "-y", "30", command});
  ASSERT_EQ(started.exit_code, 0) << started.err;

  std::string screen = tmux.wait_for("2 of 2 instances ready");
  EXPECT_NE(screen.find("NAME"), std::string::npos) << screen;
  EXPECT_NE(screen.find("web:0"), std::string::npos) << screen;
  EXPECT_NE(screen.find("web:1"), std::string::npos) << screen;

  // Live: a stop shows without touching top.
  ASSERT_EQ(daemon.cli({"stop", "web"}).exit_code, 0);
  screen = tmux.wait_for("0 of 2 instances ready");
  EXPECT_NE(screen.find("stopped"), std::string::npos) << screen;

  ASSERT_EQ(tmux.run({"send-keys", "-t", "top", "q"}).exit_code, 0);
  bool gone = false;
  for (int i = 0; i < 500 && !gone; ++i) {
    gone = !tmux.running();
    if (!gone) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(gone) << "q did not quit top:\n" << tmux.screen();
}

TEST(Top, WithoutADaemonSaysSo) {
  Daemon daemon(sleeper("web"));  // not started: only its directory
  const Result top = run_procpool({"top", "--socket", daemon.socket(), "-n", "1"});
  EXPECT_EQ(top.exit_code, 1);
  EXPECT_NE(top.err.find("no procpool daemon is running on " + daemon.socket()), std::string::npos)
      << top.err;
}

TEST(Top, NotOnATerminalItPrintsFrameAfterFrame) {
  Daemon daemon(sleeper("web"));
  daemon.start();
  ASSERT_TRUE(daemon.wait_serving()) << daemon.stderr_text();
  ASSERT_TRUE(daemon.wait_state("web:0", "ready"));
  const Result top = run_procpool({"top", "--socket", daemon.socket(), "-n", "2"});
  EXPECT_EQ(top.exit_code, 0) << top.err;
  EXPECT_EQ(top.out.find("\x1b"), std::string::npos) << "no escape codes off a terminal";
  std::size_t frames = 0;
  for (std::size_t at = top.out.find("1 of 1 instances ready"); at != std::string::npos;
       at = top.out.find("1 of 1 instances ready", at + 1)) {
    ++frames;
  }
  EXPECT_EQ(frames, 2U) << top.out;
}

}  // namespace
}  // namespace procpool::map_test
