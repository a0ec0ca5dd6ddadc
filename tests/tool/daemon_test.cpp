// `procpool run`, the daemon, tested as a user runs it: a real daemon process on a private
// socket (daemon_harness.hpp), asked through the real `procpool status` and `procpool
// shutdown`, and always stopped.
#include <fcntl.h>       // open
#include <grp.h>         // setgroups
#include <signal.h>      // SIGKILL, SIGTERM
#include <sys/socket.h>  // the raw clients
#include <sys/stat.h>    // stat
#include <sys/un.h>
#include <sys/wait.h>  // waitpid
#include <unistd.h>

#include <algorithm>   // std::count
#include <cstring>     // std::memcpy
#include <filesystem>  // the socket files
#include <fstream>     // configs
#include <iterator>    // istreambuf_iterator
#include <string>
#include <thread>  // sleep_for (poll intervals)

#include <gtest/gtest.h>

#include "daemon_harness.hpp"

namespace procpool::map_test {
namespace {

// A raw client: sends `bytes` as they are, returns what the daemon answered before `close`.
std::string raw_exchange(const std::string& socket_path, const std::string& bytes,
                         bool read_reply = true) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, socket_path.c_str(), socket_path.size() + 1);
  EXPECT_EQ(::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address), 0);
  EXPECT_EQ(::write(fd, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  std::string reply;
  if (read_reply) {
    timeval bound{10, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &bound, sizeof bound);
    char chunk[4096];
    while (std::count(reply.begin(), reply.end(), '\n') <
           std::count(bytes.begin(), bytes.end(), '\n')) {
      const ssize_t n = ::read(fd, chunk, sizeof chunk);
      if (n <= 0) break;
      reply.append(chunk, static_cast<std::size_t>(n));
    }
  }
  ::close(fd);
  return reply;
}

TEST(Daemon, StartsAProgramOnlyOnceItsDependencyIsReadyAndStopsInReverse) {
  Daemon daemon("");  // the gate lives in its directory
  const std::string gate = daemon.dir() + "/db-ready";
  std::ofstream(daemon.config_path())
      << gated_program("db", gate) << sleeper("web", "numprocs = 2\ndepends_on = [\"db\"]\n");
  daemon.start();
  ASSERT_TRUE(daemon.wait_serving()) << daemon.stderr_text();
  ASSERT_TRUE(daemon.wait_state("db:0", "starting")) << daemon.stderr_text();
  // db is not ready: web waits, with nothing running.
  const boost::json::object web = daemon.instance("web:0");
  ASSERT_FALSE(web.empty());
  EXPECT_EQ(web.at("state").as_string(), "waiting");
  EXPECT_EQ(web.at("pid").to_number<int>(), 0);
  EXPECT_EQ(web.at("waiting_for").as_array().size(), 1U);
  const Result table = daemon.cli({"status"});
  EXPECT_NE(table.out.find("waiting (for db)"), std::string::npos) << table.out;

  touch(gate);
  ASSERT_TRUE(daemon.wait_state("web:1", "ready")) << daemon.stderr_text();
  ASSERT_TRUE(daemon.wait_state("db:0", "ready"));
  const int web_pid = daemon.instance("web:0").at("pid").to_number<int>();
  const int db_pid = daemon.instance("db:0").at("pid").to_number<int>();

  const Result stop = daemon.cli({"shutdown"});
  EXPECT_EQ(stop.exit_code, 0) << stop.err;
  EXPECT_EQ(daemon.wait_exit(), 0) << daemon.stderr_text();
  EXPECT_TRUE(wait_gone(web_pid));
  EXPECT_TRUE(wait_gone(db_pid));
  const std::string log = daemon.stderr_text();
  const std::size_t web_stopped = log.find("web:0 exited");
  const std::size_t db_stopped = log.find("db:0 exited");
  ASSERT_NE(web_stopped, std::string::npos) << log;
  ASSERT_NE(db_stopped, std::string::npos) << log;
  EXPECT_LT(web_stopped, db_stopped) << "web depends on db: it stops first\n" << log;
  EXPECT_FALSE(std::filesystem::exists(daemon.socket()));
  EXPECT_FALSE(std::filesystem::exists(daemon.socket() + ".lock"));
}

TEST(Daemon, SigtermStopsEverythingAndExitsZero) {
  Daemon daemon(sleeper("a") + "[[pool]]\nname = \"inc\"\nexecutable = \"" + worker("increment") +
                "\"\nmin_workers = 1\n");
  daemon.start();
  ASSERT_TRUE(daemon.wait_serving()) << daemon.stderr_text();
  ASSERT_TRUE(daemon.wait_state("a:0", "ready"));
  const boost::json::value pools = daemon.status("inc");
  ASSERT_TRUE(pools.is_object());
  const auto& pool = pools.as_object().at("pools").as_array().at(0).as_object();
  EXPECT_EQ(pool.at("name").as_string(), "inc");
  const int worker_pid = pool.at("metrics")
                             .as_object()
                             .at("workers")
                             .as_array()
                             .at(0)
                             .as_object()
                             .at("pid")
                             .to_number<int>();
  const int program_pid = daemon.instance("a:0").at("pid").to_number<int>();
  daemon.signal(SIGTERM);
  EXPECT_EQ(daemon.wait_exit(), 0) << daemon.stderr_text();
  EXPECT_TRUE(wait_gone(program_pid));
  EXPECT_TRUE(wait_gone(worker_pid));
  EXPECT_NE(daemon.stderr_text().find("got SIGTERM: stopping"), std::string::npos);
}

TEST(Daemon, ASecondDaemonOnTheSameSocketIsRefused) {
  Daemon first(sleeper("a"));
  first.start();
  ASSERT_TRUE(first.wait_serving()) << first.stderr_text();
  const Result second = run_procpool({"run", "--socket", first.socket(), first.config_path()});
  EXPECT_EQ(second.exit_code, 2);
  EXPECT_NE(second.err.find("another procpool daemon is running on " + first.socket() + " (pid " +
                            std::to_string(first.pid()) + ")"),
            std::string::npos)
      << second.err;
  EXPECT_EQ(first.status().is_object(), true) << "the first daemon still answers";
}

TEST(Daemon, AfterASigkillItsProgramsDieAndTheNextDaemonTakesTheStaleSocket) {
  Daemon first(sleeper("a"));
  first.start();
  ASSERT_TRUE(first.wait_serving()) << first.stderr_text();
  ASSERT_TRUE(first.wait_state("a:0", "ready"));
  const int program_pid = first.instance("a:0").at("pid").to_number<int>();
  first.signal(SIGKILL);
  ASSERT_TRUE(first.wait_exit().has_value());
  EXPECT_TRUE(wait_gone(program_pid)) << "the program outlived its daemon";
  ASSERT_TRUE(std::filesystem::exists(first.socket())) << "the dead daemon's socket file stays";

  // The same socket path: the lock, released by the kernel, says the file is stale.
  const Result status_between = run_procpool({"status", "--socket", first.socket()});
  EXPECT_EQ(status_between.exit_code, 1);
  EXPECT_NE(status_between.err.find("no procpool daemon is running on " + first.socket()),
            std::string::npos)
      << status_between.err;
  Daemon second(sleeper("b"), first.socket());
  second.start();
  ASSERT_TRUE(second.wait_serving()) << second.stderr_text();
  EXPECT_TRUE(second.wait_state("b:0", "ready"));
  EXPECT_EQ(second.cli({"shutdown"}).exit_code, 0);
  EXPECT_EQ(second.wait_exit(), 0) << second.stderr_text();
}

// The children of a program's main process are not the daemon's: PR_SET_PDEATHSIG does not
// reach them. The OrphanGuard (procpool/orphan_guard.hpp) kills their process groups when the
// daemon dies.
TEST(Daemon, ASigkilledDaemonTakesEveryProcessOfItsProgramsAndPoolsWithIt) {
  Daemon daemon(
      "[[program]]\nname = \"tree\"\ncommand = \"/bin/sh\"\n"
      "args = [\"-c\", \"sleep 3600 & sleep 3600 & echo started > $GATE; wait\"]\n"
      "env = { GATE = \"GATE_PATH\" }\n"
      "[[pool]]\nname = \"inc\"\nexecutable = \"" +
      worker("increment") + "\"\nmin_workers = 1\n");
  const std::string gate = daemon.dir() + "/started";
  {
    std::ifstream in(daemon.config_path());
    std::string text((std::istreambuf_iterator<char>(in)), {});
    text.replace(text.find("GATE_PATH"), 9, gate);
    std::ofstream(daemon.config_path()) << text;
  }
  daemon.start();
  ASSERT_TRUE(daemon.wait_serving()) << daemon.stderr_text();
  ASSERT_TRUE(daemon.wait_state("tree:0", "ready"));
  for (int i = 0; i < 1000 && !std::filesystem::exists(gate); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  const int main_pid = daemon.instance("tree:0").at("pid").to_number<int>();
  std::vector<int> pids{main_pid};
  {
    std::ifstream children("/proc/" + std::to_string(main_pid) + "/task/" +
                           std::to_string(main_pid) + "/children");
    for (int child = 0; children >> child;) pids.push_back(child);
  }
  ASSERT_EQ(pids.size(), 3U) << "the shell and its two sleeps";
  pids.push_back(daemon.status("inc")
                     .as_object()
                     .at("pools")
                     .as_array()
                     .at(0)
                     .as_object()
                     .at("metrics")
                     .as_object()
                     .at("workers")
                     .as_array()
                     .at(0)
                     .as_object()
                     .at("pid")
                     .to_number<int>());
  daemon.signal(SIGKILL);
  ASSERT_TRUE(daemon.wait_exit().has_value());
  for (const int pid : pids) {
    EXPECT_TRUE(wait_gone(pid, std::chrono::seconds(1))) << "pid " << pid << " outlived the daemon";
  }
}

TEST(Daemon, MalformedRequestsGetAnErrorAndTheDaemonStaysUp) {
  Daemon daemon(sleeper("a"));
  daemon.start();
  ASSERT_TRUE(daemon.wait_serving()) << daemon.stderr_text();
  const std::string replies = raw_exchange(daemon.socket(),
                                           "not json\n[1,2]\n{\"cmd\":\"frobnicate\"}\n"
                                           "{\"cmd\":\"status\",\"bogus\":1}\n");
  EXPECT_NE(replies.find("\"error\":\"malformed request: syntax error"), std::string::npos)
      << replies;
  EXPECT_NE(replies.find("not a JSON object"), std::string::npos) << replies;
  EXPECT_NE(replies.find("unknown command 'frobnicate'"), std::string::npos) << replies;
  EXPECT_NE(replies.find("unexpected field 'bogus'"), std::string::npos) << replies;
  // A client gone mid-request, and one that sends an endless line.
  raw_exchange(daemon.socket(), "{\"cmd\":\"sta", false);
  const std::string huge = raw_exchange(daemon.socket(), std::string(70 * 1024, 'x') + "\n");
  EXPECT_NE(huge.find("request line longer than"), std::string::npos) << huge.substr(0, 200);
  EXPECT_TRUE(daemon.status().is_object()) << "the daemon stopped answering";
  const Result unknown = daemon.cli({"status", "nosuch"});
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_NE(unknown.err.find("no program or pool named 'nosuch'"), std::string::npos)
      << unknown.err;
}

TEST(Daemon, ABadConfigStartsNothing) {
  Daemon daemon("[[program]]\nname = \"a\"\ncomand = \"/bin/true\"\n");
  const Result run = run_procpool({"run", "--socket", daemon.socket(), daemon.config_path()});
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_NE(run.err.find("unknown key 'comand' (did you mean 'command'?)"), std::string::npos)
      << run.err;
  EXPECT_NE(run.err.find("has problems; nothing started"), std::string::npos) << run.err;
  EXPECT_FALSE(std::filesystem::exists(daemon.socket()));
}

TEST(Daemon, StatusAndShutdownWithoutADaemonSaySo) {
  const std::string socket = ::testing::TempDir() + "procpool-no-daemon.sock";
  const Result status = run_procpool({"status", "--socket", socket});
  EXPECT_EQ(status.exit_code, 1);
  EXPECT_NE(status.err.find("no procpool daemon is running on " + socket), std::string::npos)
      << status.err;
  const Result shutdown = run_procpool({"shutdown", "--socket", socket});
  EXPECT_EQ(shutdown.exit_code, 1);
}

TEST(Daemon, StopStartAndRestartAProgramByHand) {
  Daemon daemon("");
  const std::string gate = daemon.dir() + "/never";
  std::ofstream(daemon.config_path()) << sleeper("a", "numprocs = 2\n") << gated_program("db", gate)
                                      << sleeper("web", "depends_on = [\"db\"]\n");
  daemon.start();
  ASSERT_TRUE(daemon.wait_serving()) << daemon.stderr_text();
  ASSERT_TRUE(daemon.wait_state("a:1", "ready"));
  const int first = daemon.instance("a:0").at("pid").to_number<int>();

  const Result stop = daemon.cli({"stop", "a"});
  EXPECT_EQ(stop.exit_code, 0) << stop.err;
  EXPECT_TRUE(wait_gone(first));
  EXPECT_EQ(daemon.instance("a:0").at("state").as_string(), "stopped");
  EXPECT_EQ(daemon.instance("a:1").at("pid").to_number<int>(), 0);

  const Result start = daemon.cli({"start", "a"});
  EXPECT_EQ(start.exit_code, 0) << start.err;
  ASSERT_TRUE(daemon.wait_state("a:0", "ready"));
  const int second = daemon.instance("a:0").at("pid").to_number<int>();
  EXPECT_NE(second, first);

  const Result restart = daemon.cli({"restart", "a"});
  EXPECT_EQ(restart.exit_code, 0) << restart.err;
  EXPECT_TRUE(wait_gone(second));
  ASSERT_TRUE(daemon.wait_state("a:0", "ready"));
  EXPECT_NE(daemon.instance("a:0").at("pid").to_number<int>(), second);

  const Result unknown = daemon.cli({"stop", "nosuch"});
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_NE(unknown.err.find("no program named 'nosuch'"), std::string::npos) << unknown.err;
  // web waits for db, which never becomes ready: starting it by hand is refused.
  const Result early = daemon.cli({"start", "web"});
  EXPECT_EQ(early.exit_code, 1);
  EXPECT_NE(early.err.find("'web' waits for db to be ready"), std::string::npos) << early.err;
  EXPECT_EQ(daemon.instance("web:0").at("state").as_string(), "waiting");
  EXPECT_EQ(daemon.cli({"start"}).exit_code, 2);  // usage: NAME missing
  EXPECT_EQ(daemon.cli({"shutdown"}).exit_code, 0);
  EXPECT_EQ(daemon.wait_exit(), 0) << daemon.stderr_text();
}

// The daemon under systemd (Type=notify): a datagram socket of the test's stands in for the
// service manager's.
TEST(Daemon, NotifiesTheServiceManagerAndKeepsItsSocketFromThePrograms) {
  Daemon daemon("");
  const std::string notify_path = daemon.dir() + "/notify.sock";
  const std::string seen = daemon.dir() + "/seen";
  std::ofstream(daemon.config_path())
      << "[[program]]\nname = \"a\"\ncommand = \"/bin/sh\"\nargs = [\"-c\", \"echo "
         "\\\"$NOTIFY_SOCKET\\\" > '"
      << seen << "'; exec sleep 3600\"]\n";
  const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, notify_path.c_str(), notify_path.size() + 1);
  ASSERT_EQ(::bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address), 0);
  timeval bound{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &bound, sizeof bound);
  auto next = [&] {
    char text[4096];
    const ssize_t n = ::recv(fd, text, sizeof text, 0);
    return n > 0 ? std::string(text, static_cast<std::size_t>(n)) : std::string("(nothing)");
  };
  daemon.start({"NOTIFY_SOCKET=" + notify_path, "WATCHDOG_USEC=200000"});
  EXPECT_EQ(next(), "READY=1\nSTATUS=1 of 1 programs ready") << daemon.stderr_text();
  // WATCHDOG=1 every 100 ms (half of WATCHDOG_USEC): two in a row, whatever else comes.
  int pings = 0;
  for (int i = 0; i < 20 && pings < 2; ++i) pings += next() == "WATCHDOG=1" ? 1 : 0;
  EXPECT_EQ(pings, 2);
  // The program got the Supervisor's own notify socket, not the service manager's.
  ASSERT_TRUE(daemon.wait_state("a:0", "ready"));
  std::string program_saw;
  for (int i = 0; i < 1000 && program_saw.empty(); ++i) {
    std::ifstream in(seen);
    std::getline(in, program_saw);
    if (program_saw.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_FALSE(program_saw.empty());
  EXPECT_NE(program_saw, notify_path);
  daemon.signal(SIGTERM);
  std::string stopping;
  for (int i = 0; i < 20 && stopping.rfind("STOPPING=1", 0) != 0; ++i) stopping = next();
  EXPECT_EQ(stopping, "STOPPING=1\nSTATUS=stopping");
  EXPECT_EQ(daemon.wait_exit(), 0) << daemon.stderr_text();
  ::close(fd);
}

TEST(Daemon, APoolThatCannotStartStopsTheDaemonWithItsError) {
  // /bin/true exits at once, never READY: the pool's constructor gives up (crash_loop_after).
  Daemon daemon(sleeper("a") + "[[pool]]\nname = \"broken\"\nexecutable = \"/bin/true\"\n");
  daemon.start();
  const std::optional<int> status = daemon.wait_exit(std::chrono::seconds(60));
  EXPECT_EQ(status, 1) << daemon.stderr_text();
  EXPECT_NE(daemon.stderr_text().find("procpool run: cannot start: "), std::string::npos)
      << daemon.stderr_text();
  EXPECT_EQ(daemon.stderr_text().find("a:0 started"), std::string::npos) << daemon.stderr_text();
  EXPECT_FALSE(std::filesystem::exists(daemon.socket()));
}

// Not dumpable: a process of the daemon's uid can neither ptrace it nor open its fds through
// /proc/PID/fd, whose entries then belong to root. As root, that says nothing (root owns them
// either way), so the daemon runs as nobody for this test; then our own `procpool status` is
// another uid's, which the control socket refuses (SO_PEERCRED).
TEST(Daemon, IsNotDumpableSoItsFdsAreNotOpenToItsUser) {
  const bool root = ::getuid() == 0;
  const uid_t user = root ? 65534 : ::getuid();
  const gid_t group = root ? 65534 : ::getgid();
  std::string dir = ::testing::TempDir() + "procpool-dumpable-XXXXXX";
  ASSERT_NE(::mkdtemp(dir.data()), nullptr);
  const std::string config = dir + "/config.toml";
  const std::string socket = dir + "/control.sock";
  std::ofstream(config) << sleeper("a");
  if (root) {
    ASSERT_EQ(::chown(dir.c_str(), user, group), 0);
    ASSERT_EQ(::chown(config.c_str(), user, group), 0);
  }
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    const int null = ::open("/dev/null", O_WRONLY);
    ::dup2(null, 1);
    ::dup2(null, 2);
    if (root && (::setgroups(0, nullptr) != 0 || ::setgid(group) != 0 || ::setuid(user) != 0)) {
      ::_exit(90);
    }
    ::execl(PROCPOOL_BINARY, PROCPOOL_BINARY, "run", "--socket", socket.c_str(), config.c_str(),
            static_cast<char*>(nullptr));
    ::_exit(91);
  }
  // Serving once it answers; as root we are another uid than the daemon's, refused by
  // SO_PEERCRED, which is an answer too.
  bool serving = false;
  Result asked;
  for (int i = 0; i < 2000 && !serving; ++i) {
    asked = run_procpool({"status", "--socket", socket});
    serving = asked.exit_code == 0 || asked.err.find("permission denied") != std::string::npos;
    if (!serving) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (root) {
    EXPECT_NE(asked.err.find("permission denied: the control socket serves uid 65534 only"),
              std::string::npos)
        << asked.err;
  }
  struct stat fds {};
  const int stat_result = ::stat(("/proc/" + std::to_string(pid) + "/fd").c_str(), &fds);
  ::kill(pid, SIGTERM);
  int status = 0;
  ::waitpid(pid, &status, 0);
  std::filesystem::remove_all(dir);
  ASSERT_TRUE(serving) << "the daemon never answered (exit " << WEXITSTATUS(status) << ")";
  ASSERT_EQ(stat_result, 0);
  EXPECT_EQ(fds.st_uid, 0U) << "/proc/PID/fd belongs to the daemon's user: it is dumpable";
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
}

// Isolation between programs: as root, a program runs as its user, with that user's groups
// only, and its umask. As another user the daemon refuses the setting (checked here through
// `procpool check` run as nobody, when the test is root).
TEST(Daemon, AProgramRunsAsItsUserAndGroupWithItsUmask) {
  const std::string section =
      sleeper("isolated", "user = \"nobody\"\ngroup = \"nogroup\"\numask = \"027\"\n");
  if (::getuid() != 0) {
    const Daemon files(section);
    const Result check = run_procpool({"check", files.config_path()});
    EXPECT_EQ(check.exit_code, 1);
    EXPECT_NE(check.err.find("user needs procpool run to run as root"), std::string::npos)
        << check.err;
    return;
  }
  Daemon daemon(section);
  daemon.start();
  ASSERT_TRUE(daemon.wait_serving()) << daemon.stderr_text();
  ASSERT_TRUE(daemon.wait_state("isolated:0", "ready")) << daemon.stderr_text();
  const int pid = daemon.instance("isolated:0").at("pid").to_number<int>();
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string uid, gid, umask, groups;
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("Uid:", 0) == 0) uid = line.substr(5);
    if (line.rfind("Gid:", 0) == 0) gid = line.substr(5);
    if (line.rfind("Umask:", 0) == 0) umask = line.substr(7);
    if (line.rfind("Groups:", 0) == 0) groups = line.substr(8);
  }
  EXPECT_EQ(uid, "65534\t65534\t65534\t65534");
  EXPECT_EQ(gid, "65534\t65534\t65534\t65534");
  EXPECT_EQ(umask, "0027");
  EXPECT_EQ(groups, "65534 ") << "root's groups were kept";

  // The same config checked as nobody: refused, with the reason.
  const std::string dir = daemon.dir();
  ASSERT_EQ(::chmod(dir.c_str(), 0755), 0);
  ASSERT_EQ(::chmod(daemon.config_path().c_str(), 0644), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    const int out = ::open((dir + "/check.txt").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0666);
    if (out < 0 || ::setgroups(0, nullptr) != 0 || ::setgid(65534) != 0 || ::setuid(65534) != 0) {
      ::_exit(90);
    }
    ::dup2(out, 2);
    ::execl(PROCPOOL_BINARY, PROCPOOL_BINARY, "check", daemon.config_path().c_str(),
            static_cast<char*>(nullptr));
    ::_exit(91);
  }
  int status = 0;
  ::waitpid(child, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 1) << status;
  std::ifstream check_text(dir + "/check.txt");
  const std::string text((std::istreambuf_iterator<char>(check_text)), {});
  EXPECT_NE(text.find("user needs procpool run to run as root (this is uid 65534)"),
            std::string::npos)
      << text;
}

// `procpool ARGS` as another uid and groups (the test must be root): its exit status and
// stderr.
std::pair<int, std::string> procpool_as(uid_t uid, gid_t gid, const std::vector<gid_t>& groups,
                                        const std::vector<std::string>& args,
                                        const std::string& scratch) {
  const int err = ::open(scratch.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  const pid_t child = ::fork();
  if (child == 0) {
    ::dup2(err, 2);
    if (::setgroups(groups.size(), groups.data()) != 0 || ::setgid(gid) != 0 ||
        ::setuid(uid) != 0) {
      ::_exit(90);
    }
    std::vector<std::string> argv_text{PROCPOOL_BINARY};
    argv_text.insert(argv_text.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (std::string& arg : argv_text) argv.push_back(arg.data());
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    ::_exit(91);
  }
  int status = 0;
  ::waitpid(child, &status, 0);
  std::ifstream in(scratch);
  std::string text((std::istreambuf_iterator<char>(in)), {});
  ::close(err);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, text};
}

// [control] group: its members may use the control socket (0660, the group's), by primary or
// supplementary group; other users still may not.
TEST(Daemon, AControlGroupLetsItsMembersUseTheSocket) {
  if (::getuid() != 0) GTEST_SKIP() << "clients of other users need the test to run as root";
  Daemon daemon(sleeper("a") + "[control]\ngroup = \"nogroup\"\n");
  // The socket's directory (the test's) must let the group through.
  ASSERT_EQ(::chown(daemon.dir().c_str(), 0, 65534), 0);
  ASSERT_EQ(::chmod(daemon.dir().c_str(), 0710), 0);
  daemon.start();
  ASSERT_TRUE(daemon.wait_serving()) << daemon.stderr_text();
  struct stat socket {};
  ASSERT_EQ(::stat(daemon.socket().c_str(), &socket), 0);
  EXPECT_EQ(socket.st_mode & 0777, 0660U);
  EXPECT_EQ(socket.st_gid, 65534U);

  const std::string scratch = daemon.dir() + "/client-stderr.txt";
  const std::vector<std::string> status{"status", "--socket", daemon.socket()};
  const auto primary = procpool_as(65534, 65534, {}, status, scratch);
  EXPECT_EQ(primary.first, 0) << primary.second;
  const auto supplementary = procpool_as(65534, 4242, {65534}, status, scratch);
  EXPECT_EQ(supplementary.first, 0) << supplementary.second;
  const auto outsider = procpool_as(65534, 4242, {}, status, scratch);
  EXPECT_EQ(outsider.first, 1);
  // The file's mode stops it first (SO_PEERCRED would too: Daemon.IsNotDumpable...).
  EXPECT_NE(outsider.second.find("Permission denied"), std::string::npos) << outsider.second;
}

TEST(Daemon, AProgramsLogFileIsRotatedPrefixedOnStderrAndShownByLogs) {
  Daemon daemon("");
  const std::string log = daemon.dir() + "/a.log";
  std::ofstream(daemon.config_path())
      << "[[program]]\nname = \"a\"\ncommand = \"/bin/sh\"\nargs = [\"-c\", \"i=0; while :; do "
         "i=$((i+1)); echo line $i; sleep 0.01; done\"]\nlog = \""
      << log << "\"\nlog_max_size = 200\nlog_keep = 2\n"
      << sleeper("quiet");
  daemon.start();
  ASSERT_TRUE(daemon.wait_serving()) << daemon.stderr_text();
  // Rotated at 200 bytes (about 25 lines): wait for the first rotation, bounded.
  bool rotated = false;
  for (int i = 0; i < 2000 && !rotated; ++i) {
    rotated = std::filesystem::exists(log + ".1");
    if (!rotated) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(rotated) << daemon.stderr_text();
  const Result last = daemon.cli({"logs", "a", "-n", "2"});
  EXPECT_EQ(last.exit_code, 0) << last.err;
  const std::vector<std::string> lines = lines_of(last.out);
  ASSERT_EQ(lines.size(), 2U) << last.out;
  EXPECT_EQ(lines[0].rfind("line ", 0), 0U) << lines[0];
  EXPECT_EQ(std::stoi(lines[1].substr(5)), std::stoi(lines[0].substr(5)) + 1);
  // -f goes on across rotations until Ctrl-C: 60 more lines is two rotations or more.
  RunOptions follow;
  follow.signals.push_back(SignalStep{SIGINT, 61, ""});
  const Result followed =
      run_procpool({"logs", "a", "-f", "-n", "1", "--socket", daemon.socket()}, "", follow);
  EXPECT_EQ(followed.exit_code, 0) << followed.err;
  const std::vector<std::string> seen = lines_of(followed.out);
  ASSERT_GE(seen.size(), 61U);
  for (std::size_t i = 1; i < seen.size(); ++i) {
    EXPECT_EQ(std::stoi(seen[i].substr(5)), std::stoi(seen[i - 1].substr(5)) + 1)
        << "a line lost or repeated across a rotation at " << i;
  }
  // The daemon's stderr has them too, each with its instance and pid.
  const std::string pid = std::to_string(daemon.instance("a:0").at("pid").to_number<int>());
  EXPECT_NE(daemon.stderr_text().find("[a:0 " + pid + "] line 1\n"), std::string::npos)
      << daemon.stderr_text();
  const Result none = daemon.cli({"logs", "quiet"});
  EXPECT_EQ(none.exit_code, 1);
  EXPECT_NE(none.err.find("program 'quiet' has no log file"), std::string::npos) << none.err;
  EXPECT_EQ(daemon.cli({"shutdown"}).exit_code, 0);
  EXPECT_EQ(daemon.wait_exit(), 0);
}

// The action at the restart limit: a program that gives up (give_up_after) stays stopped while
// the daemon goes on, or, with on_give_up = "exit", the daemon stops everything and exits 3 so
// that its service manager acts.
TEST(Daemon, AProgramThatGivesUpStaysStoppedOrEndsTheDaemon) {
  const std::string broken =
      "[[program]]\nname = \"broken\"\ncommand = \"/bin/sh\"\nargs = [\"-c\", \"exit 1\"]\n"
      "give_up_after = 2\n";
  {
    Daemon stays(broken + sleeper("fine"));
    stays.start();
    ASSERT_TRUE(stays.wait_serving()) << stays.stderr_text();
    ASSERT_TRUE(stays.wait_state("broken:0", "stopped")) << stays.stderr_text();
    EXPECT_TRUE(stays.wait_state("fine:0", "ready"));
    EXPECT_EQ(stays.cli({"shutdown"}).exit_code, 0);
    EXPECT_EQ(stays.wait_exit(), 0) << stays.stderr_text();
  }
  Daemon ends(broken + "on_give_up = \"exit\"\n" + sleeper("fine"));
  ends.start();
  EXPECT_EQ(ends.wait_exit(std::chrono::seconds(60)), 3) << ends.stderr_text();
  EXPECT_NE(ends.stderr_text().find("broken:0 gave up after 2 broken starts in a row (on_give_up = "
                                    "\"exit\"): stopping"),
            std::string::npos)
      << ends.stderr_text();
  EXPECT_FALSE(std::filesystem::exists(ends.socket()));
}

}  // namespace
}  // namespace procpool::map_test
