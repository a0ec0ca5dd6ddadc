// procpool::Supervisor with real children (shell scripts in a private temp dir): the state
// machine's transitions, restart modes, stop/restart, status(), typed errors, and the destructor
// leaving no process behind. Waits are on the event callback, bounded (supervisor_test_support).

#include <signal.h>  // SIGKILL

#include <filesystem>  // std::filesystem

#include "supervisor_test_support.hpp"

namespace procpool::test {
namespace {

using Kind = SupervisorEvent::Kind;

TEST(SupervisorLifecycle, StartReadyStopWithDefaults) {
  ScriptDir dir;
  EventLog log;
  int pid = 0;
  {
    Supervisor supervisor({log.callback()});
    supervisor.add(spec_for("sleeper", dir.script("sleeper.sh", "exec sleep 1000")));
    auto status = supervisor.status();
    ASSERT_EQ(status.size(), 1u);
    EXPECT_EQ(status[0].state, ProgramState::Stopped);
    EXPECT_EQ(status[0].name, "sleeper:0");

    supervisor.start("sleeper");
    pid = log.wait_for(Kind::Started).pid;
    EXPECT_GT(pid, 0);
    log.wait_for(Kind::Ready);  // ReadinessMode::Started: ready at exec
    status = supervisor.status();
    EXPECT_EQ(status[0].state, ProgramState::Ready);
    EXPECT_EQ(status[0].pid, pid);
    EXPECT_TRUE(process_exists(pid));

    supervisor.stop("sleeper");  // returns once it is stopped
    status = supervisor.status();
    EXPECT_EQ(status[0].state, ProgramState::Stopped);
    EXPECT_EQ(status[0].pid, 0);
    ASSERT_TRUE(status[0].last_exit.has_value());
    EXPECT_TRUE(status[0].last_exit->signaled);
    EXPECT_EQ(status[0].last_exit->signal, SIGTERM);
    EXPECT_EQ(status[0].last_exit->killed_by, KillReason::Stop);
    EXPECT_FALSE(process_exists(pid));
    log.wait_for(Kind::Stopped);
  }
  // Exited, then Stopped; nothing restarted it.
  EXPECT_EQ(log.count(Kind::Started), 1u);
  EXPECT_EQ(log.count(Kind::Exited), 1u);
}

// The spec's args, env and working directory reach the program.
TEST(SupervisorLifecycle, ArgsEnvAndWorkingDirectory) {
  ScriptDir dir;
  EventLog log;
  std::filesystem::create_directory(dir.file("work"));
  Supervisor supervisor({log.callback()});
  ProgramSpec spec =
      spec_for("env", dir.script("env.sh", "echo \"$1 $2 $GREETING $(pwd)\" > \"$DIR/out\""));
  spec.args = {"one", "two"};
  spec.env = {{"GREETING", "hello"}};
  spec.working_directory = dir.file("work");
  spec.restart_mode = RestartMode::Never;
  supervisor.add(spec);
  supervisor.start("env");
  log.wait_for(Kind::Stopped);
  std::ifstream in(dir.file("out"));
  std::string line;
  std::getline(in, line);
  EXPECT_EQ(line, "one two hello " + std::filesystem::canonical(dir.file("work")).string());
}

// The default restart mode is Always: a long-running program that exits, even with status 0, is
// not doing its job. Exiting at once is a broken start, so it backs off.
TEST(SupervisorLifecycle, ExitZeroAtOnceRestartsWithBackoffByDefault) {
  ScriptDir dir;
  EventLog log;
  Supervisor supervisor({log.callback()});
  supervisor.add(spec_for("quitter", dir.script("quitter.sh", "exit 0")));
  supervisor.start("quitter");
  const SupervisorEvent exited = log.wait_for(Kind::Exited);
  ASSERT_TRUE(exited.exit.has_value());
  EXPECT_FALSE(exited.exit->signaled);
  EXPECT_EQ(exited.exit->exit_code, 0);
  const SupervisorEvent backoff = log.wait_for(Kind::Backoff);
  EXPECT_EQ(backoff.broken_in_a_row, 1u);
  EXPECT_EQ(backoff.delay_cap, RestartPolicy{}.initial_backoff);
  EXPECT_LT(backoff.delay, backoff.delay_cap);
  log.wait_for(Kind::Started, 2);
}

TEST(SupervisorLifecycle, ExitZeroStaysStoppedWithOnFailure) {
  ScriptDir dir;
  EventLog log;
  Supervisor supervisor({log.callback()});
  ProgramSpec spec = spec_for("quitter", dir.script("quitter.sh", "exit 0"));
  spec.restart_mode = RestartMode::OnFailure;
  supervisor.add(spec);
  supervisor.start("quitter");
  log.wait_for(Kind::Stopped);
  EXPECT_EQ(supervisor.status()[0].state, ProgramState::Stopped);
  EXPECT_EQ(log.count(Kind::Started), 1u);
  EXPECT_EQ(log.count(Kind::Backoff), 0u);
}

TEST(SupervisorLifecycle, ExitOneRestartsWithOnFailure) {
  ScriptDir dir;
  EventLog log;
  Supervisor supervisor({log.callback()});
  ProgramSpec spec = spec_for("failer", dir.script("failer.sh", "exit 1"));
  spec.restart_mode = RestartMode::OnFailure;
  supervisor.add(spec);
  supervisor.start("failer");
  log.wait_for(Kind::Started, 2);
}

TEST(SupervisorLifecycle, NeverModeStaysStopped) {
  ScriptDir dir;
  EventLog log;
  Supervisor supervisor({log.callback()});
  ProgramSpec spec = spec_for("failer", dir.script("failer.sh", "exit 3"));
  spec.restart_mode = RestartMode::Never;
  supervisor.add(spec);
  supervisor.start("failer");
  const SupervisorEvent stopped = log.wait_for(Kind::Stopped);
  EXPECT_EQ(log.count(Kind::Started), 1u);
  const auto status = supervisor.status();
  ASSERT_TRUE(status[0].last_exit.has_value());
  EXPECT_EQ(status[0].last_exit->exit_code, 3);
  EXPECT_FALSE(stopped.message.empty());
}

// A stable run (ready for min_uptime) that then dies restarts at once, with no backoff.
TEST(SupervisorLifecycle, KilledAfterAStableRunRestartsAtOnce) {
  ScriptDir dir;
  EventLog log;
  Supervisor supervisor({log.callback()});
  ProgramSpec spec = spec_for("sleeper", dir.script("sleeper.sh", "exec sleep 1000"));
  spec.restart.min_uptime = 0ms;  // what this test is about: every ready run counts as stable
  supervisor.add(spec);
  supervisor.start("sleeper");
  const int pid = log.wait_for(Kind::Ready).pid;
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  const SupervisorEvent exited = log.wait_for(Kind::Exited);
  ASSERT_TRUE(exited.exit.has_value());
  EXPECT_EQ(exited.exit->signal, SIGKILL);
  EXPECT_EQ(exited.exit->killed_by, KillReason::None);
  log.wait_for(Kind::Ready, 2);
  EXPECT_EQ(log.count(Kind::Backoff), 0u);
  EXPECT_EQ(supervisor.status()[0].restarts, 1u);
}

TEST(SupervisorLifecycle, RestartStopsThenStartsAgain) {
  ScriptDir dir;
  EventLog log;
  Supervisor supervisor({log.callback()});
  supervisor.add(spec_for("sleeper", dir.script("sleeper.sh", "exec sleep 1000")));
  supervisor.start("sleeper");
  const int first = log.wait_for(Kind::Ready).pid;
  supervisor.restart("sleeper");
  const int second = log.wait_for(Kind::Ready, 2).pid;
  EXPECT_NE(first, second);
  EXPECT_TRUE(wait_gone(first));
  EXPECT_EQ(log.count(Kind::Backoff), 0u);
  const auto status = supervisor.status();
  EXPECT_EQ(status[0].restarts, 1u);
  ASSERT_TRUE(status[0].last_exit.has_value());
  EXPECT_EQ(status[0].last_exit->killed_by, KillReason::Stop);
}

TEST(SupervisorLifecycle, NumprocsNamesInstancesAndStatusFields) {
  ScriptDir dir;
  EventLog log;
  Supervisor supervisor({log.callback()});
  // Notify readiness only so that "started" is in stderr before the test stops them.
  ProgramSpec spec =
      spec_for("web", dir.script("web.sh", "echo started >&2\nexec \"$NOTIFY\" READY=1 --pause"));
  spec.readiness = ReadinessMode::Notify;
  spec.numprocs = 3;
  spec.stderr_sink = OutputSink::none();
  supervisor.add(spec);
  supervisor.start_all();
  log.wait_for(Kind::Ready, 3);
  const auto status = supervisor.status();
  ASSERT_EQ(status.size(), 3u);
  for (unsigned i = 0; i < 3; ++i) {
    EXPECT_EQ(status[i].name, "web:" + std::to_string(i));
    EXPECT_EQ(status[i].program, "web");
    EXPECT_EQ(status[i].instance, i);
    EXPECT_EQ(status[i].state, ProgramState::Ready);
    EXPECT_GT(status[i].pid, 0);
    EXPECT_EQ(status[i].restarts, 0u);
    EXPECT_FALSE(status[i].last_exit.has_value());
    EXPECT_GT(status[i].rss_bytes, 0u);  // of its process group, from /proc
    EXPECT_GE(status[i].cpu_seconds, 0.0);
    EXPECT_GE(status[i].uptime.count(), 0);
  }
  supervisor.stop_all();
  for (const auto& s : supervisor.status()) {
    EXPECT_EQ(s.state, ProgramState::Stopped);
    ASSERT_TRUE(s.last_exit.has_value());
    EXPECT_NE(s.stderr_tail.find("started"), std::string::npos) << s.stderr_tail;
  }
}

// The destructor stops every instance (stop signal to its group, then SIGKILL after the grace)
// and reaps it: no child, no grandchild, no zombie.
TEST(SupervisorLifecycle, DestructorLeavesNoProcess) {
  ScriptDir dir;
  EventLog log;
  std::vector<int> pids;
  {
    Supervisor supervisor({log.callback()});
    // Notify readiness only to know the pid file is written before the destructor runs.
    ProgramSpec spec = spec_for("tree", dir.script("tree.sh",
                                                   "sleep 1000 &\necho $! > \"$DIR/child.$$\"\n"
                                                   "exec \"$NOTIFY\" READY=1 --pause"));
    spec.readiness = ReadinessMode::Notify;
    spec.numprocs = 2;
    supervisor.add(spec);
    supervisor.start("tree");
    log.wait_for(Kind::Ready, 2);
    for (const auto& s : supervisor.status()) pids.push_back(s.pid);
  }
  for (const int pid : pids) {
    EXPECT_FALSE(process_exists(pid)) << pid;  // reaped: kill(pid, 0) fails
    std::ifstream in(dir.file("child." + std::to_string(pid)));
    int grandchild = 0;
    ASSERT_TRUE(in >> grandchild) << "the script wrote its child's pid";
    EXPECT_TRUE(wait_gone(grandchild)) << grandchild;
  }
  EXPECT_EQ(log.count(Kind::Stopped), 2u);
}

std::size_t open_fd_count() {
  std::size_t n = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) ++n;
  return n;
}

TEST(SupervisorLifecycle, DestructorLeavesNoFdOrSocketFile) {
  ScriptDir dir;
  const std::size_t fds_before = open_fd_count();
  std::string socket_path;
  {
    EventLog log;
    Supervisor supervisor({log.callback()});
    // Notify readiness only so that the socket path is written before the test reads it.
    ProgramSpec notifier = spec_for("env", dir.script("env.sh",
                                                      "echo \"$NOTIFY_SOCKET\" > \"$DIR/socket\"\n"
                                                      "exec \"$NOTIFY\" READY=1 --pause"));
    notifier.readiness = ReadinessMode::Notify;
    supervisor.add(notifier);
    ProgramSpec spec = spec_for("env2", dir.script("env2.sh", "exec sleep 1000"));
    supervisor.add(spec);
    supervisor.start_all();
    log.wait_for(Kind::Ready, 2);
    std::ifstream in(dir.file("socket"));
    ASSERT_TRUE(in >> socket_path);
    EXPECT_TRUE(std::filesystem::exists(socket_path));
  }
  EXPECT_FALSE(std::filesystem::exists(socket_path));
  EXPECT_FALSE(std::filesystem::exists(std::filesystem::path(socket_path).parent_path()));
  EXPECT_EQ(open_fd_count(), fds_before);
}

// Backoff -> Stopped: stop() while waiting to restart cancels the restart.
TEST(SupervisorLifecycle, StopDuringBackoffStaysStopped) {
  ScriptDir dir;
  EventLog log;
  Supervisor supervisor({log.callback()});
  ProgramSpec spec = spec_for("failer", dir.script("failer.sh", "exit 1"));
  spec.restart.initial_backoff = 60000ms;  // what this test is about: a backoff to interrupt
  spec.restart.max_backoff = 60000ms;
  supervisor.add(spec);
  supervisor.start("failer");
  log.wait_for(Kind::Backoff);
  EXPECT_EQ(supervisor.status()[0].state, ProgramState::Backoff);
  supervisor.stop("failer");
  EXPECT_EQ(supervisor.status()[0].state, ProgramState::Stopped);
  log.wait_for(Kind::Stopped);
  EXPECT_EQ(log.count(Kind::Started), 1u);
}

// Backoff -> Backoff: the binary vanished, so the restart's launch fails; it keeps backing off.
TEST(SupervisorLifecycle, LaunchFailureWhileBackingOffBacksOffAgain) {
  ScriptDir dir;
  EventLog log;
  Supervisor supervisor({log.callback()});
  supervisor.add(spec_for("vanisher", dir.script("vanisher.sh", "rm -f \"$0\"\nexit 1")));
  supervisor.start("vanisher");
  const SupervisorEvent failed = log.wait_for(Kind::SpawnFailed);
  EXPECT_EQ(failed.error_code, ENOENT);
  const SupervisorEvent backoff = log.wait_for(Kind::Backoff, 2);
  EXPECT_EQ(backoff.broken_in_a_row, 2u);
  EXPECT_EQ(log.count(Kind::Started), 1u);
}

// Ready -> Stopping on STOPPING=1: the program says it is shutting down on its own.
TEST(SupervisorLifecycle, StoppingMessageMovesToStopping) {
  ScriptDir dir;
  EventLog log;
  Supervisor supervisor({log.callback()});
  ProgramSpec spec =
      spec_for("leaver", dir.script("leaver.sh", "exec \"$NOTIFY\" READY=1 STOPPING=1 --pause"));
  spec.readiness = ReadinessMode::Notify;
  spec.stop_grace = 200ms;  // what this test is about: how long a STOPPING program may take
  supervisor.add(spec);
  supervisor.start("leaver");
  log.wait_for(Kind::Ready);
  const SupervisorEvent exited = log.wait_for(Kind::Exited);
  ASSERT_TRUE(exited.exit.has_value());
  EXPECT_EQ(exited.exit->signal, SIGKILL);  // it never exited: SIGKILL after the grace
  EXPECT_GE(exited.exit->uptime, 200ms);
}

TEST(SupervisorLifecycle, TypedErrors) {
  ScriptDir dir;
  Supervisor supervisor;
  const auto kind_of = [](auto&& fn) {
    try {
      fn();
    } catch (const SupervisorError& e) {
      return e.kind();
    }
    ADD_FAILURE() << "no SupervisorError";
    return SupervisorError::Kind::ShutDown;
  };
  using K = SupervisorError::Kind;
  EXPECT_EQ(kind_of([&] { supervisor.start("nope"); }), K::UnknownProgram);
  EXPECT_EQ(kind_of([&] { supervisor.add(spec_for("x", "")); }), K::BadSpec);
  ProgramSpec zero = spec_for("x", "/bin/true");
  zero.numprocs = 0;
  EXPECT_EQ(kind_of([&] { supervisor.add(zero); }), K::BadSpec);
  supervisor.add(spec_for("x", "/bin/true"));
  EXPECT_EQ(kind_of([&] { supervisor.add(spec_for("x", "/bin/true")); }), K::DuplicateProgram);

  supervisor.add(spec_for("missing", dir.file("no-such-binary")));
  try {
    supervisor.start("missing");
    ADD_FAILURE() << "started a missing binary";
  } catch (const SupervisorError& e) {
    EXPECT_EQ(e.kind(), K::SpawnFailed);
    EXPECT_EQ(e.error_code(), ENOENT);
    EXPECT_NE(std::string(e.what()).find("missing:0"), std::string::npos) << e.what();
  }
  EXPECT_EQ(supervisor.status()[1].state, ProgramState::Stopped);
}

TEST(SupervisorLifecycle, ThrowingEventCallbackIsCountedNotFatal) {
  ScriptDir dir;
  EventLog log;
  auto record = log.callback();
  Supervisor supervisor({[&](const SupervisorEvent& e) {
    record(e);
    throw std::runtime_error("boom");
  }});
  supervisor.add(spec_for("sleeper", dir.script("sleeper.sh", "exec sleep 1000")));
  supervisor.start("sleeper");
  log.wait_for(Kind::Ready);
  // status() runs on the supervisor's thread after the Ready callback has returned (thrown).
  EXPECT_EQ(supervisor.status()[0].state, ProgramState::Ready);
  EXPECT_GE(supervisor.callback_errors(), 2u);  // Started and Ready both threw
}

}  // namespace
}  // namespace procpool::test
