// `procpool reload` and SIGHUP against a real daemon (daemon_harness.hpp): only what changed is
// touched, a changed program is replaced instance by instance with each new one ready before
// its old one stops, a failing update rolls back, and a bad config changes nothing.

#include <signal.h>  // SIGHUP

#include <fstream>  // configs, /proc/PID/environ
#include <string>
#include <thread>  // the reload's client

#include <gtest/gtest.h>

#include "daemon_harness.hpp"

namespace procpool::map_test {
namespace {

// A program ready through sd_notify, started with VERSION in its environment.
std::string versioned(const std::string& name, const std::string& version,
                      const std::string& extra = "") {
  return "[[program]]\nname = \"" + name + "\"\ncommand = \"" + PROCPOOL_TEST_NOTIFY +
         "\"\nargs = [\"READY=1\", \"--pause\"]\nreadiness = \"notify\"\nenv = { VERSION = \"" +
         version + "\" }\n" + extra;
}

std::string version_of(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/environ");
  std::string entry;
  while (std::getline(in, entry, '\0')) {
    if (entry.rfind("VERSION=", 0) == 0) return entry.substr(8);
  }
  return "";
}

int pid_of(Daemon& daemon, const std::string& instance) {
  const boost::json::object entry = daemon.instance(instance);
  return entry.empty() ? 0 : entry.at("pid").to_number<int>();
}

TEST(DaemonReload, AppliesOnlyWhatChangedAndEachNewInstanceIsReadyBeforeItsOldOneStops) {
  Daemon daemon(versioned("web", "1", "numprocs = 2\n") + sleeper("keep") + sleeper("gone"));
  daemon.start();
  ASSERT_TRUE(daemon.wait_serving()) << daemon.stderr_text();
  ASSERT_TRUE(daemon.wait_state("web:1", "ready")) << daemon.stderr_text();
  ASSERT_TRUE(daemon.wait_state("gone:0", "ready"));
  const int web0 = pid_of(daemon, "web:0"), web1 = pid_of(daemon, "web:1");
  const int keep = pid_of(daemon, "keep:0"), gone = pid_of(daemon, "gone:0");

  std::ofstream(daemon.config_path())
      << versioned("web", "2", "numprocs = 2\n") + sleeper("keep") + sleeper("added");
  const Result reload = daemon.cli({"reload"});
  ASSERT_EQ(reload.exit_code, 0) << reload.err << daemon.stderr_text();
  EXPECT_NE(reload.out.find("added: added\nchanged: web\nremoved: gone\n"), std::string::npos)
      << reload.out;

  EXPECT_EQ(pid_of(daemon, "keep:0"), keep) << "an unchanged program is left alone";
  EXPECT_TRUE(daemon.instance("gone:0").empty());
  EXPECT_TRUE(wait_gone(gone));
  EXPECT_TRUE(daemon.wait_state("added:0", "ready"));
  const std::string log = daemon.stderr_text();
  for (const auto& [instance, old] : {std::pair{std::string("web:0"), web0}, {"web:1", web1}}) {
    EXPECT_TRUE(daemon.wait_state(instance, "ready"));
    const int now = pid_of(daemon, instance);
    EXPECT_NE(now, old);
    EXPECT_EQ(version_of(now), "2") << instance;
    EXPECT_TRUE(wait_gone(old)) << instance;
    // Its successor started and was ready before the old one exited.
    const std::size_t started = log.find(instance + " started (pid " + std::to_string(now) + ")");
    ASSERT_NE(started, std::string::npos) << log;
    const std::size_t ready = log.find(instance + " ready", started);
    const std::size_t exited = log.find(instance + " exited");
    ASSERT_NE(ready, std::string::npos) << log;
    ASSERT_NE(exited, std::string::npos) << log;
    EXPECT_LT(ready, exited) << instance << "\n" << log;
  }
  EXPECT_NE(log.find("reload done in "), std::string::npos) << log;
}

TEST(DaemonReload, AnUpdateThatFailsRollsBackAndKeepsTheOldConfig) {
  Daemon daemon(versioned("web", "1"));
  daemon.start();
  ASSERT_TRUE(daemon.wait_serving()) << daemon.stderr_text();
  ASSERT_TRUE(daemon.wait_state("web:0", "ready")) << daemon.stderr_text();
  const int before = pid_of(daemon, "web:0");
  const std::string v1 = versioned("web", "1");

  std::ofstream(daemon.config_path())
      << "[[program]]\nname = \"web\"\ncommand = \"/bin/sh\"\nargs = [\"-c\", \"exit 3\"]\n"
         "readiness = \"notify\"\n";
  const Result reload = daemon.cli({"reload"});
  EXPECT_EQ(reload.exit_code, 1);
  EXPECT_NE(reload.err.find("web: web:0 (new) ended before it was ready: exit code 3"),
            std::string::npos)
      << reload.err;
  EXPECT_EQ(pid_of(daemon, "web:0"), before) << "the old instance was not stopped";
  EXPECT_EQ(daemon.instance("web:0").at("state").as_string(), "ready");

  // The daemon still runs the old config: reloading it changes nothing.
  std::ofstream(daemon.config_path()) << v1;
  const Result again = daemon.cli({"reload"});
  EXPECT_EQ(again.exit_code, 0) << again.err;
  EXPECT_NE(again.out.find("changed: -"), std::string::npos) << again.out;
  EXPECT_EQ(pid_of(daemon, "web:0"), before);
}

TEST(DaemonReload, ABadConfigChangesNothing) {
  Daemon daemon(sleeper("a"));
  daemon.start();
  ASSERT_TRUE(daemon.wait_serving()) << daemon.stderr_text();
  ASSERT_TRUE(daemon.wait_state("a:0", "ready"));
  const int before = pid_of(daemon, "a:0");
  std::ofstream(daemon.config_path()) << sleeper("a", "numprocs = 0\n");
  const Result reload = daemon.cli({"reload"});
  EXPECT_EQ(reload.exit_code, 1);
  EXPECT_NE(reload.err.find("has problems; nothing changed"), std::string::npos) << reload.err;
  EXPECT_NE(reload.err.find(daemon.config_path() + ":5:"), std::string::npos) << reload.err;
  EXPECT_EQ(pid_of(daemon, "a:0"), before);
  EXPECT_EQ(daemon.status().as_object().at("programs").as_array().size(), 1U);
}

TEST(DaemonReload, SighupReloads) {
  Daemon daemon(sleeper("a"));
  daemon.start();
  ASSERT_TRUE(daemon.wait_serving()) << daemon.stderr_text();
  ASSERT_TRUE(daemon.wait_state("a:0", "ready"));
  std::ofstream(daemon.config_path()) << sleeper("a") + sleeper("b");
  daemon.signal(SIGHUP);
  EXPECT_TRUE(daemon.wait_state("b:0", "ready")) << daemon.stderr_text();
  EXPECT_EQ(daemon.cli({"shutdown"}).exit_code, 0);
  EXPECT_EQ(daemon.wait_exit(), 0) << daemon.stderr_text();
}

// A changed pool is replaced: the new one is ready before the old one drains.
TEST(DaemonReload, AChangedPoolIsReplaced) {
  const std::string pool =
      "[[pool]]\nname = \"inc\"\nexecutable = \"" + worker("increment") + "\"\nmin_workers = 1\n";
  Daemon daemon(pool);
  daemon.start();
  ASSERT_TRUE(daemon.wait_serving()) << daemon.stderr_text();
  const auto workers = [&] {
    return daemon.status("inc")
        .as_object()
        .at("pools")
        .as_array()
        .at(0)
        .as_object()
        .at("metrics")
        .as_object()
        .at("workers")
        .as_array();
  };
  const int old_worker = workers().at(0).as_object().at("pid").to_number<int>();
  std::ofstream(daemon.config_path()) << pool + "max_workers = 2\n";
  const Result reload = daemon.cli({"reload"});
  ASSERT_EQ(reload.exit_code, 0) << reload.err;
  EXPECT_NE(reload.out.find("changed: inc"), std::string::npos) << reload.out;
  EXPECT_TRUE(wait_gone(old_worker));
  EXPECT_NE(workers().at(0).as_object().at("pid").to_number<int>(), old_worker);
}

// A reload waits for its new instances to be ready; meanwhile the daemon answers status, and
// refuses a second long command with "busy" rather than keeping it waiting.
TEST(DaemonReload, StatusIsAnsweredWhileAReloadWaitsForReadiness) {
  Daemon daemon("");
  const std::string first_gate = daemon.dir() + "/v1-ready",
                    second_gate = daemon.dir() + "/v2-ready";
  touch(first_gate);
  std::ofstream(daemon.config_path()) << gated_program("web", first_gate);
  daemon.start();
  ASSERT_TRUE(daemon.wait_serving()) << daemon.stderr_text();
  ASSERT_TRUE(daemon.wait_state("web:0", "ready")) << daemon.stderr_text();
  const int old = pid_of(daemon, "web:0");

  std::ofstream(daemon.config_path()) << gated_program("web", second_gate);
  Result reload;
  std::thread reloading([&] { reload = daemon.cli({"reload"}); });
  // Until its new instance runs (and waits for its gate).
  bool started = false;
  for (int i = 0; i < 2000 && !started; ++i) {
    started =
        daemon.stderr_text().find("web:0 started", daemon.stderr_text().find("reload: updating")) !=
        std::string::npos;
    if (!started) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(started) << daemon.stderr_text();
  const Result status = daemon.cli({"status"});
  EXPECT_EQ(status.exit_code, 0) << status.err;
  EXPECT_EQ(pid_of(daemon, "web:0"), old) << "the old instance serves until the new one is ready";
  const Result second = daemon.cli({"restart", "web"});
  EXPECT_EQ(second.exit_code, 1);
  EXPECT_NE(second.err.find("busy: the daemon is doing a reload"), std::string::npos) << second.err;

  touch(second_gate);
  reloading.join();
  EXPECT_EQ(reload.exit_code, 0) << reload.err;
  EXPECT_NE(reload.out.find("changed: web"), std::string::npos) << reload.out;
  EXPECT_NE(pid_of(daemon, "web:0"), old);
  EXPECT_TRUE(wait_gone(old));
}

// A changed program that now depends on a program the same reload adds is updated only once
// that one is ready.
TEST(DaemonReload, ANewDependencyIsReadyBeforeTheProgramThatNeedsItIsUpdated) {
  Daemon daemon(versioned("web", "1"));
  const std::string up = daemon.dir() + "/redis-up";
  daemon.start();
  ASSERT_TRUE(daemon.wait_serving()) << daemon.stderr_text();
  ASSERT_TRUE(daemon.wait_state("web:0", "ready"));
  const std::string notify = PROCPOOL_TEST_NOTIFY;
  std::ofstream(daemon.config_path())
      << "[[program]]\nname = \"redis\"\ncommand = \"/bin/sh\"\nargs = [\"-c\", \"touch " + up +
             "; exec " + notify + " READY=1 --pause\"]\nreadiness = \"notify\"\n"
      << "[[program]]\nname = \"web\"\ncommand = \"/bin/sh\"\nargs = [\"-c\", \"[ -e " + up +
             " ] || exit 3; exec " + notify +
             " READY=1 --pause\"]\nreadiness = \"notify\"\ndepends_on = [\"redis\"]\n";
  const Result reload = daemon.cli({"reload"});
  EXPECT_EQ(reload.exit_code, 0) << reload.err << daemon.stderr_text();
  EXPECT_NE(reload.out.find("added: redis\nchanged: web\n"), std::string::npos) << reload.out;
  EXPECT_TRUE(daemon.wait_state("web:0", "ready"));
  EXPECT_TRUE(daemon.wait_state("redis:0", "ready"));
}

// Removals come last, and a program whose dependent kept its old config (its update failed)
// is not removed under it.
TEST(DaemonReload, AProgramStillNeededByARolledBackOneIsNotRemoved) {
  Daemon daemon(sleeper("db") + versioned("api", "1", "depends_on = [\"db\"]\n"));
  daemon.start();
  ASSERT_TRUE(daemon.wait_serving()) << daemon.stderr_text();
  ASSERT_TRUE(daemon.wait_state("api:0", "ready")) << daemon.stderr_text();
  const int db = pid_of(daemon, "db:0");
  std::ofstream(daemon.config_path())
      << "[[program]]\nname = \"api\"\ncommand = \"/bin/sh\"\nargs = [\"-c\", \"exit 3\"]\n"
         "readiness = \"notify\"\n";
  const Result reload = daemon.cli({"reload"});
  EXPECT_EQ(reload.exit_code, 1);
  EXPECT_NE(reload.err.find("db: not removed: 'api', whose update failed, depends on it"),
            std::string::npos)
      << reload.err;
  EXPECT_NE(reload.out.find("removed: -"), std::string::npos) << reload.out;
  EXPECT_EQ(pid_of(daemon, "db:0"), db);
  EXPECT_EQ(daemon.instance("api:0").at("state").as_string(), "ready");
  EXPECT_EQ(daemon.cli({"restart", "api"}).exit_code, 0) << "its dependency is still there";
}

// A changed env_file alone changes the program; with max_unavailable = 1 each old instance
// is stopped before its successor starts.
TEST(DaemonReload, AChangedEnvFileIsAppliedStopFirstWithMaxUnavailable) {
  Daemon daemon("");
  const std::string env = daemon.dir() + "/web.env";
  std::ofstream(env) << "# the version\nVERSION=1\n";
  std::ofstream(daemon.config_path())
      << "[[program]]\nname = \"web\"\ncommand = \"" << PROCPOOL_TEST_NOTIFY
      << "\"\nargs = [\"READY=1\", \"--pause\"]\nreadiness = \"notify\"\nnumprocs = 2\n"
         "env_file = \""
      << env << "\"\nmax_unavailable = 1\n";  // what this test is about
  daemon.start();
  ASSERT_TRUE(daemon.wait_serving()) << daemon.stderr_text();
  ASSERT_TRUE(daemon.wait_state("web:1", "ready")) << daemon.stderr_text();
  const int old0 = pid_of(daemon, "web:0");
  EXPECT_EQ(version_of(old0), "1");

  std::ofstream(env) << "VERSION=2\n";
  const Result reload = daemon.cli({"reload"});
  ASSERT_EQ(reload.exit_code, 0) << reload.err;
  EXPECT_NE(reload.out.find("changed: web"), std::string::npos) << reload.out;
  const int new0 = pid_of(daemon, "web:0");
  EXPECT_NE(new0, old0);
  EXPECT_EQ(version_of(new0), "2");
  EXPECT_EQ(version_of(pid_of(daemon, "web:1")), "2");
  const std::string log = daemon.stderr_text();
  const std::size_t exited = log.find("web:0 exited");
  const std::size_t started = log.find("web:0 started (pid " + std::to_string(new0) + ")");
  ASSERT_NE(exited, std::string::npos) << log;
  ASSERT_NE(started, std::string::npos) << log;
  EXPECT_LT(exited, started) << "stop-first: the old one goes before the new one starts\n" << log;
}

}  // namespace
}  // namespace procpool::map_test
