// ProgramSpec::user, group and umask with a real child. As root: the child runs as nobody with
// nobody's groups and the umask asked for. As any other user: the supervisor refuses them.

#include <unistd.h>  // geteuid

#include <fstream>  // /proc/PID/status
#include <string>

#include "supervisor_test_support.hpp"

namespace procpool::test {
namespace {

using Kind = SupervisorEvent::Kind;

// The value of `field` ("Uid", "Umask") in /proc/PID/status.
std::string status_field(int pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(field + ":", 0) == 0) return line.substr(field.size() + 2);
  }
  return "";
}

TEST(SupervisorCredentials, AProgramRunsAsItsUserWithItsUmaskOrIsRefusedWithoutRoot) {
  ScriptDir dir;
  EventLog log;
  Supervisor supervisor({log.callback()});
  ProgramSpec spec = spec_for("nobody", "/bin/sleep");
  spec.args = {"3600"};
  spec.user = "nobody";  // what this test is about
  spec.umask = 027;
  if (::geteuid() != 0) {
    try {
      supervisor.add(spec);
      ADD_FAILURE() << "a non-root supervisor took user = nobody";
    } catch (const SupervisorError& e) {
      EXPECT_EQ(e.kind(), SupervisorError::Kind::BadSpec);
      EXPECT_NE(std::string(e.what()).find("user needs the supervisor to run as root"),
                std::string::npos)
          << e.what();
    }
    return;
  }
  supervisor.add(spec);
  supervisor.start("nobody");
  const int pid = log.wait_for(Kind::Started).pid;
  // Uid: real, effective, saved, filesystem.
  EXPECT_EQ(status_field(pid, "Uid"), "65534\t65534\t65534\t65534");
  EXPECT_EQ(status_field(pid, "Gid"), "65534\t65534\t65534\t65534");
  EXPECT_EQ(status_field(pid, "Umask"), "0027");
  EXPECT_EQ(status_field(pid, "Groups").find('0'), std::string::npos)
      << "root's groups were kept: " << status_field(pid, "Groups");

  ProgramSpec unknown = spec_for("ghost", "/bin/true");
  unknown.user = "no-such-user-procpool";
  EXPECT_THROW(supervisor.add(unknown), SupervisorError);
}

}  // namespace
}  // namespace procpool::test
