// Readiness and the watchdog with real children: READY=1 over $NOTIFY_SOCKET from the main pid
// (and not from another pid), a start timeout, TCP-port readiness, STATUS=, and a watchdog
// that stops being pinged.

#include <netinet/in.h>  // sockaddr_in
#include <signal.h>      // SIGKILL
#include <sys/socket.h>  // socket, bind, getsockname

#include "supervisor_test_support.hpp"

namespace procpool::test {
namespace {

using Kind = SupervisorEvent::Kind;

TEST(SupervisorReadiness, NotifyReadyFromTheMainPid) {
  ScriptDir dir;
  EventLog log;
  Supervisor supervisor({log.callback()});
  ProgramSpec spec =
      spec_for("notifier",
               dir.script("notifier.sh", "exec \"$NOTIFY\" 'STATUS=warming up' READY=1 --pause"));
  spec.readiness = ReadinessMode::Notify;
  supervisor.add(spec);
  supervisor.start("notifier");
  log.wait_for(Kind::Started);
  const SupervisorEvent ready = log.wait_for(Kind::Ready);
  const auto status = supervisor.status();
  EXPECT_EQ(status[0].state, ProgramState::Ready);
  EXPECT_EQ(status[0].pid, ready.pid);
  EXPECT_EQ(status[0].status_text, "warming up");
}

// NotifyAccess=main: READY=1 from a child of the main process does not count; the start
// timeout then kills it as a broken start, and it is started again after a backoff.
TEST(SupervisorReadiness, ReadyFromAnotherPidIsIgnoredAndTheStartTimesOut) {
  ScriptDir dir;
  EventLog log;
  Supervisor supervisor({log.callback()});
  ProgramSpec spec =
      spec_for("liar", dir.script("liar.sh", "\"$NOTIFY\" READY=1\nexec sleep 1000"));
  spec.readiness = ReadinessMode::Notify;
  spec.start_timeout = 300ms;  // what this test is about
  supervisor.add(spec);
  supervisor.start("liar");
  const SupervisorEvent exited = log.wait_for(Kind::Exited);
  ASSERT_TRUE(exited.exit.has_value());
  EXPECT_EQ(exited.exit->killed_by, KillReason::StartTimeout);
  EXPECT_FALSE(exited.exit->was_ready);
  EXPECT_GE(exited.exit->uptime, 300ms);
  EXPECT_EQ(log.count(Kind::Ready), 0u);
  const SupervisorEvent backoff = log.wait_for(Kind::Backoff);
  EXPECT_EQ(backoff.broken_in_a_row, 1u);
  log.wait_for(Kind::Started, 2);
}

TEST(SupervisorReadiness, NeverReadyIsKilledBackedOffAndRestarted) {
  ScriptDir dir;
  EventLog log;
  Supervisor supervisor({log.callback()});
  ProgramSpec spec = spec_for("mute", dir.script("mute.sh", "exec sleep 1000"));
  spec.readiness = ReadinessMode::Notify;
  spec.start_timeout = 200ms;  // what this test is about
  supervisor.add(spec);
  supervisor.start("mute");
  const SupervisorEvent first = log.wait_for(Kind::Exited, 1);
  const SupervisorEvent second = log.wait_for(Kind::Exited, 2);
  for (const auto& e : {first, second}) {
    ASSERT_TRUE(e.exit.has_value());
    EXPECT_EQ(e.exit->killed_by, KillReason::StartTimeout);
    EXPECT_TRUE(e.exit->signaled);
    EXPECT_EQ(e.exit->signal, SIGTERM);  // graceful: the stop signal first
  }
  EXPECT_NE(first.pid, second.pid);
  EXPECT_EQ(log.wait_for(Kind::Backoff, 2).broken_in_a_row, 2u);
}

unsigned short free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  EXPECT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  ::close(fd);
  return ntohs(addr.sin_port);
}

// Ready only once the port accepts: the script listens after writing a marker, so a probe that
// called it ready at exec would see no marker yet.
TEST(SupervisorReadiness, TcpPortAccepts) {
  ScriptDir dir;
  EventLog log;
  const unsigned short port = free_port();
  Supervisor supervisor({log.callback()});
  ProgramSpec spec =
      spec_for("server", dir.script("server.sh",
                                    "sleep 0.3\ntouch \"$DIR/listening\"\nexec \"$NOTIFY\" "
                                    "--listen " +
                                        std::to_string(port) + " --pause"));
  spec.readiness = ReadinessMode::TcpPort;
  spec.ready_port = port;
  supervisor.add(spec);
  supervisor.start("server");
  log.wait_for(Kind::Ready);
  EXPECT_TRUE(std::filesystem::exists(dir.file("listening")));
  EXPECT_EQ(supervisor.status()[0].state, ProgramState::Ready);
}

// Several instances on one port, each with its own listening socket (SO_REUSEPORT) held by a
// child of the main process, in its process group: each is ready.
TEST(SupervisorReadiness, TcpPortWithSeveralInstancesReadiesEachThatListens) {
  ScriptDir dir;
  EventLog log;
  const unsigned short port = free_port();
  Supervisor supervisor({log.callback()});
  ProgramSpec spec = spec_for("pair", dir.script("pair.sh", "'" + listener_helper() + "' " +
                                                                std::to_string(port) + " &\nwait"));
  spec.readiness = ReadinessMode::TcpPort;
  spec.ready_port = port;
  spec.numprocs = 2;
  supervisor.add(spec);
  supervisor.start("pair");
  log.wait_for(Kind::Ready, 1, "pair:0");
  log.wait_for(Kind::Ready, 1, "pair:1");
}

// Two instances, one port: only the first to get there listens; the other never does. The port
// accepting (the first's socket) must not make the other ready: it runs into its start timeout.
TEST(SupervisorReadiness, TcpPortWithSeveralInstancesIsNotReadyOnAnothersSocket) {
  ScriptDir dir;
  EventLog log;
  const unsigned short port = free_port();
  Supervisor supervisor({log.callback()});
  ProgramSpec spec = spec_for("pair", dir.script("pair.sh",
                                                 "if mkdir \"$DIR/first\" 2>/dev/null; then\n"
                                                 "  exec \"$NOTIFY\" --listen " +
                                                     std::to_string(port) +
                                                     " --pause\n"
                                                     "fi\n"
                                                     "exec sleep 1000"));
  spec.readiness = ReadinessMode::TcpPort;
  spec.ready_port = port;
  spec.numprocs = 2;
  spec.start_timeout = scaled(2000ms);  // what this test is about: the other is never ready
  supervisor.add(spec);
  supervisor.start("pair");
  const std::string listener = log.wait_for(Kind::Ready).name;
  const SupervisorEvent exited = log.wait_for(Kind::Exited);
  EXPECT_NE(exited.name, listener);
  ASSERT_TRUE(exited.exit.has_value());
  EXPECT_EQ(exited.exit->killed_by, KillReason::StartTimeout);
  EXPECT_FALSE(exited.exit->was_ready);
  for (const SupervisorEvent& e : log.events()) {
    EXPECT_FALSE(e.kind == Kind::Ready && e.name == exited.name) << exited.name << " was ready";
  }
}

// Pings four times, then stops pinging (hung): killed by the watchdog, restarted.
TEST(SupervisorReadiness, LateWatchdogKillsAndRestarts) {
  ScriptDir dir;
  EventLog log;
  Supervisor supervisor({log.callback()});
  ProgramSpec spec =
      spec_for("pinger", dir.script("pinger.sh",
                                    "echo \"$WATCHDOG_USEC $WATCHDOG_PID $$\" > \"$DIR/usec.$$\"\n"
                                    "exec \"$NOTIFY\" READY=1 --ping 4 100 --pause"));
  spec.readiness = ReadinessMode::Notify;
  spec.watchdog = 400ms;  // what this test is about
  supervisor.add(spec);
  supervisor.start("pinger");
  const SupervisorEvent exited = log.wait_for(Kind::Exited);
  ASSERT_TRUE(exited.exit.has_value());
  EXPECT_EQ(exited.exit->killed_by, KillReason::Watchdog);
  EXPECT_TRUE(exited.exit->was_ready);
  EXPECT_EQ(exited.exit->signal, SIGKILL);
  // Four pings 100 ms apart moved the deadline: killed no earlier than the last ping + 400 ms,
  // 700 ms after the first. The bound leaves 100 ms for the script starting before the
  // supervisor notes the start time; a deadline that pings did not move would fire near 400 ms.
  EXPECT_GE(exited.exit->uptime, 600ms);
  log.wait_for(Kind::Ready, 2);
  // The first run's environment: WATCHDOG_USEC, and WATCHDOG_PID naming the instance itself.
  std::ifstream env(dir.file("usec." + std::to_string(exited.pid)));
  std::string usec, watchdog_pid, self;
  env >> usec >> watchdog_pid >> self;
  EXPECT_EQ(usec, "400000");
  EXPECT_EQ(watchdog_pid, std::to_string(exited.pid));
  EXPECT_EQ(self, std::to_string(exited.pid));
}

}  // namespace
}  // namespace procpool::test
