// Output capture with real children: the line callback, a rotated log file, and a grandchild
// that keeps stderr open after its parent exited (KillMode=control-group).

#include <sys/stat.h>  // stat

#include <mutex>  // std::mutex

#include "supervisor_test_support.hpp"

namespace procpool::test {
namespace {

using Kind = SupervisorEvent::Kind;

TEST(SupervisorOutput, LineCallbackGetsEveryLineWithTheInstanceName) {
  ScriptDir dir;
  EventLog log;
  std::mutex mutex;
  std::vector<std::string> lines;
  Supervisor supervisor({log.callback()});
  ProgramSpec spec =
      spec_for("talker", dir.script("talker.sh", "printf 'one\\ntwo\\n'\nprintf 'partial'"));
  spec.restart_mode = RestartMode::Never;
  spec.stdout_sink = OutputSink::none();
  spec.stdout_sink.on_line = [&](std::string_view instance, std::string_view line) {
    const std::lock_guard lock(mutex);
    lines.push_back(std::string(instance) + "|" + std::string(line));
  };
  supervisor.add(spec);
  supervisor.start("talker");
  log.wait_for(Kind::Stopped);  // the pipes are drained before the exit is reported
  const std::lock_guard lock(mutex);
  EXPECT_EQ(lines, (std::vector<std::string>{"talker:0|one", "talker:0|two", "talker:0|partial"}));
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST(SupervisorOutput, FileSinkRotatesBySize) {
  ScriptDir dir;
  EventLog log;
  Supervisor supervisor({log.callback()});
  // 10 lines of 10 bytes = 100 bytes into files of 30: out.log.3 would be the oldest, keep = 2
  // drops it.
  ProgramSpec spec =
      spec_for("logger", dir.script("logger.sh",
                                    "i=0\nwhile [ $i -lt 10 ]; do echo \"line $i ..\"; "
                                    "i=$((i+1)); done"));
  spec.restart_mode = RestartMode::Never;
  spec.stdout_sink = OutputSink::none();
  spec.stdout_sink.file = dir.file("out.log");
  spec.stdout_sink.max_bytes = 30;
  spec.stdout_sink.keep = 2;
  supervisor.add(spec);
  supervisor.start("logger");
  log.wait_for(Kind::Stopped);

  std::string all;
  for (int i = 0; i < 10; ++i) all += "line " + std::to_string(i) + " ..\n";
  ASSERT_EQ(all.size(), 100u);
  EXPECT_EQ(read_file(dir.file("out.log")), all.substr(90));
  EXPECT_EQ(read_file(dir.file("out.log.1")), all.substr(60, 30));
  EXPECT_EQ(read_file(dir.file("out.log.2")), all.substr(30, 30));
  EXPECT_FALSE(std::filesystem::exists(dir.file("out.log.3")));
  for (const char* name : {"out.log", "out.log.1", "out.log.2"}) {
    struct stat st {};
    ASSERT_EQ(::stat(dir.file(name).c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u) << name;
  }
}

// The main process exits while a grandchild still holds its stderr: the exit is reported at
// once (not at the grandchild's EOF), and the grandchild, left in the instance's process group,
// gets the stop signal.
TEST(SupervisorOutput, GrandchildHoldingStderrDoesNotDelayTheExit) {
  ScriptDir dir;
  EventLog log;
  Supervisor supervisor({log.callback()});
  ProgramSpec spec = spec_for("forker", dir.script("forker.sh",
                                                   "sleep 1000 &\necho $! > \"$DIR/grandchild\"\n"
                                                   "echo goodbye >&2\nexit 3"));
  spec.restart_mode = RestartMode::Never;
  spec.stderr_sink = OutputSink::none();
  supervisor.add(spec);
  const auto started = std::chrono::steady_clock::now();
  supervisor.start("forker");
  const SupervisorEvent exited = log.wait_for(Kind::Exited);
  // Well below stop_grace (10 s by default), which is when a SIGKILL would end a stuck group.
  EXPECT_LT(std::chrono::steady_clock::now() - started, scaled(std::chrono::milliseconds(5000)));
  ASSERT_TRUE(exited.exit.has_value());
  EXPECT_EQ(exited.exit->exit_code, 3);
  EXPECT_NE(exited.exit->stderr_tail.find("goodbye"), std::string::npos)
      << exited.exit->stderr_tail;

  std::ifstream in(dir.file("grandchild"));
  int grandchild = 0;
  ASSERT_TRUE(in >> grandchild);
  EXPECT_TRUE(wait_gone(grandchild, scaled(std::chrono::milliseconds(5000))));
  log.wait_for(Kind::Stopped);
}

}  // namespace
}  // namespace procpool::test
