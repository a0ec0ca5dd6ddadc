// Supervisor::update and remove with real children and the default UpdateOptions: the new
// instance is ready before the old one stops, a failure rolls back, numprocs may change, and
// memory recycling starts the replacement first.

#include <fstream>  // /proc/PID/environ
#include <thread>

#include "supervisor_test_support.hpp"

namespace procpool::test {
namespace {

using Kind = SupervisorEvent::Kind;

// The spec a process was started from: the VERSION in its environment.
std::string version(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/environ");
  std::string entry;
  while (std::getline(in, entry, '\0')) {
    if (entry.rfind("VERSION=", 0) == 0) return entry.substr(8);
  }
  return "";
}

ProgramSpec notify_spec(const std::string& name, const std::string& command, unsigned numprocs,
                        const std::string& version = "1") {
  ProgramSpec spec = spec_for(name, command);
  spec.readiness = ReadinessMode::Notify;
  spec.numprocs = numprocs;
  spec.env = {{"VERSION", version}};
  return spec;
}

// The index of the first event of `kind` for `pid`, or -1.
long index_of(const std::vector<SupervisorEvent>& events, Kind kind, int pid) {
  for (std::size_t i = 0; i < events.size(); ++i) {
    if (events[i].kind == kind && events[i].pid == pid) return static_cast<long>(i);
  }
  return -1;
}

std::vector<int> pids(const Supervisor& supervisor) {
  std::vector<int> out;
  for (const ProcessStatus& s : supervisor.status()) out.push_back(s.pid);
  return out;
}

TEST(SupervisorUpdate, EachNewInstanceIsReadyBeforeItsOldOneStops) {
  ScriptDir dir;
  EventLog log;
  Supervisor supervisor({log.callback()});
  const std::string v1 = dir.script("v1.sh", "exec \"$NOTIFY\" READY=1 --pause");
  const std::string v2 = dir.script("v2.sh", "exec \"$NOTIFY\" READY=1 --pause");
  supervisor.add(notify_spec("web", v1, 2));
  supervisor.start("web");
  log.wait_for(Kind::Ready, 2);
  const std::vector<int> old = pids(supervisor);

  supervisor.update(notify_spec("web", v2, 2, "2"));

  const std::vector<ProcessStatus> status = supervisor.status();
  ASSERT_EQ(status.size(), 2u);
  const std::vector<SupervisorEvent> events = log.events();
  for (std::size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(status[i].state, ProgramState::Ready);
    EXPECT_EQ(status[i].name, "web:" + std::to_string(i));
    EXPECT_EQ(version(status[i].pid), "2");
    // update() returns once the old ones are gone.
    EXPECT_FALSE(process_exists(old[i]));
    const long ready_new = index_of(events, Kind::Ready, status[i].pid);
    const long exited_old = index_of(events, Kind::Exited, old[i]);
    ASSERT_GE(ready_new, 0);
    ASSERT_GE(exited_old, 0);
    EXPECT_LT(ready_new, exited_old) << "slot " << i;
  }
  // One slot at a time: the second new instance starts after the first one is ready.
  EXPECT_LT(index_of(events, Kind::Ready, status[0].pid),
            index_of(events, Kind::Started, status[1].pid));
}

TEST(SupervisorUpdate, AFailingNewInstanceRollsBackTheSlotsAlreadyReplaced) {
  ScriptDir dir;
  EventLog log;
  Supervisor supervisor({log.callback()});
  const std::string v1 = dir.script("v1.sh", "exec \"$NOTIFY\" READY=1 --pause");
  // Ready as instance 0; instance 1 exits at once.
  const std::string v2 = dir.script(
      "v2.sh", "[ \"$PROCPOOL_INSTANCE\" = 1 ] && exit 7\nexec \"$NOTIFY\" READY=1 --pause");
  supervisor.add(notify_spec("web", v1, 2));
  supervisor.start("web");
  log.wait_for(Kind::Ready, 2);
  const std::vector<int> old = pids(supervisor);

  try {
    supervisor.update(notify_spec("web", v2, 2, "2"));
    ADD_FAILURE() << "the update succeeded";
  } catch (const SupervisorError& e) {
    EXPECT_EQ(e.kind(), SupervisorError::Kind::RolledBack);
    EXPECT_NE(
        std::string(e.what()).find("web:1 (new) ended before it was ready: exit code 7 (pid "),
        std::string::npos)
        << e.what();
  }
  const std::vector<ProcessStatus> status = supervisor.status();
  ASSERT_EQ(status.size(), 2u);
  // Slot 1 never lost its old instance; slot 0 runs v1 again, in a new process.
  EXPECT_EQ(status[1].pid, old[1]);
  EXPECT_NE(status[0].pid, old[0]);
  for (const ProcessStatus& s : status) {
    EXPECT_EQ(s.state, ProgramState::Ready) << s.name;
    EXPECT_EQ(version(s.pid), "1") << s.name;
  }
  // And the program keeps v1: a restart runs it.
  supervisor.restart("web");
  log.wait_for(Kind::Ready, 6);
  for (const ProcessStatus& s : supervisor.status()) {
    EXPECT_EQ(version(s.pid), "1") << s.name;
  }
}

TEST(SupervisorUpdate, ANewInstanceNotReadyInTimeRollsBack) {
  ScriptDir dir;
  EventLog log;
  Supervisor supervisor({log.callback()});
  supervisor.add(notify_spec("web", dir.script("v1.sh", "exec \"$NOTIFY\" READY=1 --pause"), 1));
  supervisor.start("web");
  log.wait_for(Kind::Ready);
  const int old = supervisor.status()[0].pid;
  UpdateOptions options;
  options.ready_timeout = 300ms;  // what this test is about
  try {
    supervisor.update(notify_spec("web", dir.script("v2.sh", "exec sleep 1000"), 1), options);
    ADD_FAILURE() << "the update succeeded";
  } catch (const SupervisorError& e) {
    EXPECT_EQ(e.kind(), SupervisorError::Kind::RolledBack);
    EXPECT_NE(std::string(e.what()).find("web:0 (new) was not ready within 300 ms"),
              std::string::npos)
        << e.what();
  }
  EXPECT_EQ(supervisor.status()[0].pid, old);
  EXPECT_EQ(supervisor.status()[0].state, ProgramState::Ready);
}

TEST(SupervisorUpdate, MaxUnavailableStopsEachOldInstanceFirst) {
  ScriptDir dir;
  EventLog log;
  Supervisor supervisor({log.callback()});
  supervisor.add(notify_spec("web", dir.script("v1.sh", "exec \"$NOTIFY\" READY=1 --pause"), 2));
  supervisor.start("web");
  log.wait_for(Kind::Ready, 2);
  const std::vector<int> old = pids(supervisor);
  UpdateOptions options;
  options.max_unavailable = 1;  // what this test is about
  supervisor.update(notify_spec("web", dir.script("v2.sh", "exec \"$NOTIFY\" READY=1 --pause"), 2),
                    options);
  const std::vector<int> now = pids(supervisor);
  const std::vector<SupervisorEvent> events = log.events();
  for (std::size_t i = 0; i < 2; ++i) {
    EXPECT_LT(index_of(events, Kind::Exited, old[i]), index_of(events, Kind::Started, now[i]))
        << "slot " << i;
  }
  // One at a time: slot 1's old one runs until slot 0's new one is ready.
  EXPECT_LT(index_of(events, Kind::Ready, now[0]), index_of(events, Kind::Exited, old[1]));
}

TEST(SupervisorUpdate, NumprocsGrowsAndShrinks) {
  ScriptDir dir;
  EventLog log;
  Supervisor supervisor({log.callback()});
  const std::string script = dir.script("web.sh", "exec \"$NOTIFY\" READY=1 --pause");
  supervisor.add(notify_spec("web", script, 1));
  supervisor.start("web");
  log.wait_for(Kind::Ready);
  supervisor.update(notify_spec("web", script, 3));
  std::vector<ProcessStatus> status = supervisor.status();
  ASSERT_EQ(status.size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(status[i].name, "web:" + std::to_string(i));
    EXPECT_EQ(status[i].state, ProgramState::Ready);
  }
  const int third = status[2].pid;
  supervisor.update(notify_spec("web", script, 1));
  status = supervisor.status();
  ASSERT_EQ(status.size(), 1u);
  EXPECT_EQ(status[0].state, ProgramState::Ready);
  EXPECT_FALSE(process_exists(third));
}

TEST(SupervisorUpdate, AStoppedProgramIsUpdatedWithoutStarting) {
  ScriptDir dir;
  EventLog log;
  Supervisor supervisor({log.callback()});
  supervisor.add(notify_spec("web", dir.script("v1.sh", "exec \"$NOTIFY\" READY=1 --pause"), 1));
  supervisor.update(
      notify_spec("web", dir.script("v2.sh", "exec \"$NOTIFY\" READY=1 --pause"), 1, "2"));
  EXPECT_EQ(supervisor.status()[0].state, ProgramState::Stopped);
  EXPECT_EQ(log.count(Kind::Started), 0u);
  supervisor.start("web");
  log.wait_for(Kind::Ready);
  EXPECT_EQ(version(supervisor.status()[0].pid), "2");
}

TEST(SupervisorUpdate, UnknownProgramAndBadSpecAreRefused) {
  Supervisor supervisor;
  try {
    supervisor.update(spec_for("nope", "/bin/true"));
    ADD_FAILURE();
  } catch (const SupervisorError& e) {
    EXPECT_EQ(e.kind(), SupervisorError::Kind::UnknownProgram);
  }
  supervisor.add(spec_for("web", "/bin/true"));
  ProgramSpec bad = spec_for("web", "/bin/true");
  bad.numprocs = 0;
  try {
    supervisor.update(bad);
    ADD_FAILURE();
  } catch (const SupervisorError& e) {
    EXPECT_EQ(e.kind(), SupervisorError::Kind::BadSpec);
  }
}

TEST(SupervisorUpdate, ARemovedProgramIsStoppedAndForgotten) {
  ScriptDir dir;
  EventLog log;
  Supervisor supervisor({log.callback()});
  const std::string script = dir.script("web.sh", "exec \"$NOTIFY\" READY=1 --pause");
  supervisor.add(notify_spec("web", script, 2));
  supervisor.start("web");
  log.wait_for(Kind::Ready, 2);
  const std::vector<int> old = pids(supervisor);
  supervisor.remove("web");
  EXPECT_TRUE(supervisor.status().empty());
  for (int pid : old) EXPECT_FALSE(process_exists(pid));
  EXPECT_THROW(supervisor.start("web"), SupervisorError);
  supervisor.add(notify_spec("web", script, 1));  // the name is free again
  supervisor.start("web");
  log.wait_for(Kind::Ready, 3);
}

// Above memory_soft_limit, a ready instance's replacement is started and ready before the old
// one is stopped (PM2's max_memory_restart stops first).
TEST(SupervisorUpdate, MemoryRecyclingStartsTheReplacementFirst) {
  ScriptDir dir;
  EventLog log;
  Supervisor supervisor({log.callback()});
  ProgramSpec spec =
      notify_spec("hog", dir.script("hog.sh", "exec \"$NOTIFY\" READY=1 --pause"), 1);
  spec.memory_soft_limit = 1;  // what this test is about: any process is above it
  supervisor.add(spec);
  supervisor.start("hog");
  const int first = log.wait_for(Kind::Ready).pid;
  const SupervisorEvent exited = log.wait_for(Kind::Exited);
  EXPECT_EQ(exited.pid, first);
  ASSERT_TRUE(exited.exit.has_value());
  EXPECT_EQ(exited.exit->killed_by, KillReason::MemorySoft);
  EXPECT_EQ(exited.exit->signal, SIGTERM);
  const std::vector<SupervisorEvent> events = log.events();
  const long second_ready = [&] {
    for (std::size_t i = 0; i < events.size(); ++i) {
      if (events[i].kind == Kind::Ready && events[i].pid != first) return static_cast<long>(i);
    }
    return -1L;
  }();
  ASSERT_GE(second_ready, 0) << log.describe();
  EXPECT_LT(second_ready, index_of(events, Kind::Exited, first));
}

// A stop during an update ends it: the update reports Interrupted, the program is stopped.
TEST(SupervisorUpdate, AStopInterruptsAnUpdate) {
  ScriptDir dir;
  EventLog log;
  Supervisor supervisor({log.callback()});
  supervisor.add(notify_spec("web", dir.script("v1.sh", "exec \"$NOTIFY\" READY=1 --pause"), 1));
  supervisor.start("web");
  log.wait_for(Kind::Ready);
  std::thread updater([&] {
    try {
      supervisor.update(notify_spec("web", dir.script("v2.sh", "exec sleep 1000"), 1));
      ADD_FAILURE() << "the update succeeded";
    } catch (const SupervisorError& e) {
      EXPECT_EQ(e.kind(), SupervisorError::Kind::Interrupted) << e.what();
    }
  });
  log.wait_for(Kind::Started, 2);  // the new instance, not ready (it never notifies)
  supervisor.stop("web");
  updater.join();
  EXPECT_EQ(supervisor.status()[0].state, ProgramState::Stopped);
}

// Stop-first, a new instance that fails is stopped before the old one runs again: never two
// copies at once, which is what max_unavailable > 0 is for.
TEST(SupervisorUpdate, AStopFirstRollbackStartsTheOldOneOnlyOnceTheNewOneIsGone) {
  ScriptDir dir;
  EventLog log;
  Supervisor supervisor({log.callback()});
  supervisor.add(notify_spec("web", dir.script("v1.sh", "exec \"$NOTIFY\" READY=1 --pause"), 1));
  supervisor.start("web");
  const int old = log.wait_for(Kind::Ready).pid;
  UpdateOptions options;
  options.max_unavailable = 1;    // what this test is about
  options.ready_timeout = 300ms;  // and the failure it rolls back
  EXPECT_THROW(supervisor.update(notify_spec("web", dir.script("v2.sh", "exec sleep 1000"), 1, "2"),
                                 options),
               SupervisorError);
  const int fresh = log.wait_for(Kind::Started, 2).pid;
  const int again = log.wait_for(Kind::Started, 3).pid;
  const std::vector<SupervisorEvent> events = log.events();
  EXPECT_LT(index_of(events, Kind::Exited, old), index_of(events, Kind::Started, fresh));
  EXPECT_LT(index_of(events, Kind::Exited, fresh), index_of(events, Kind::Started, again))
      << "the old spec ran again beside the new one";
  EXPECT_EQ(version(again), "1");
  EXPECT_EQ(supervisor.status()[0].pid, again);
}

TEST(SupervisorUpdate, GrowingAStoppedProgramAddsStoppedInstances) {
  ScriptDir dir;
  EventLog log;
  Supervisor supervisor({log.callback()});
  const std::string script = dir.script("web.sh", "exec \"$NOTIFY\" READY=1 --pause");
  supervisor.add(notify_spec("web", script, 1));
  supervisor.update(notify_spec("web", script, 3));
  const std::vector<ProcessStatus> status = supervisor.status();
  ASSERT_EQ(status.size(), 3u);
  for (const ProcessStatus& s : status) EXPECT_EQ(s.state, ProgramState::Stopped) << s.name;
  EXPECT_EQ(log.count(Kind::Started), 0u);
}

// A remove while a memory recycle waits for its replacement: the recycle is interrupted and the
// remove goes on (not Busy), both processes gone when it returns.
TEST(SupervisorUpdate, ARemoveDuringAMemoryRecycleGoesAhead) {
  ScriptDir dir;
  EventLog log;
  Supervisor supervisor({log.callback()});
  // The first run becomes ready; its replacement never does.
  ProgramSpec spec =
      notify_spec("hog",
                  dir.script("hog.sh",
                             "[ -e \"$DIR/first\" ] && exec sleep 1000\ntouch \"$DIR/first\"\n"
                             "exec \"$NOTIFY\" READY=1 --pause"),
                  1);
  spec.memory_soft_limit = 1;  // what this test is about: any process is above it
  supervisor.add(spec);
  supervisor.start("hog");
  const int first = log.wait_for(Kind::Ready).pid;
  const int replacement = log.wait_for(Kind::Started, 2).pid;
  supervisor.remove("hog");
  EXPECT_TRUE(supervisor.status().empty());
  EXPECT_FALSE(process_exists(first));
  EXPECT_FALSE(process_exists(replacement));
}

}  // namespace
}  // namespace procpool::test
