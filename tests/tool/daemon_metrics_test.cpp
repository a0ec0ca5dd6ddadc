// The daemon's Prometheus endpoint (procpool run --metrics), scraped with curl as Prometheus
// would, and its text checked by promtool, Prometheus' own parser (scripts/setup.sh takes it
// out of Debian's prometheus package).

#include <netinet/in.h>  // sockaddr_in
#include <sys/socket.h>  // a port in use
#include <unistd.h>

#include <regex>  // the endpoint in the daemon's log
#include <string>
#include <thread>  // sleep_for (poll intervals)

#include <gtest/gtest.h>

#include "daemon_harness.hpp"

namespace procpool::map_test {
namespace {

// The URL the daemon says it serves, from its stderr (bounded wait).
std::string metrics_url(Daemon& daemon) {
  const std::regex pattern("metrics at (http://[^ \n]+)");
  for (int i = 0; i < 2000; ++i) {
    std::smatch match;
    const std::string log = daemon.stderr_text();
    if (std::regex_search(log, match, pattern)) return match[1];
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ADD_FAILURE() << "no metrics URL in the daemon's stderr: " << daemon.stderr_text();
  return "";
}

Result curl(const std::vector<std::string>& args) {
  std::vector<std::string> argv{"curl", "-sS", "--max-time", "20"};
  argv.insert(argv.end(), args.begin(), args.end());
  argv[0] = "/usr/bin/curl";
  return run_program(argv);
}

TEST(DaemonMetrics, ServesPrometheusTextOnLoopbackLabelledByProgramPoolAndSlot) {
  Daemon daemon(sleeper("web", "numprocs = 2\n") + "[[pool]]\nname = \"inc\"\nexecutable = \"" +
                worker("increment") + "\"\nmin_workers = 1\n");
  daemon.start({}, {"--metrics", "0"});
  ASSERT_TRUE(daemon.wait_serving()) << daemon.stderr_text();
  ASSERT_TRUE(daemon.wait_state("web:1", "ready"));
  const std::string url = metrics_url(daemon);
  ASSERT_EQ(url.rfind("http://127.0.0.1:", 0), 0U) << "loopback unless asked: " << url;

  ASSERT_EQ(daemon.cli({"restart", "web"}).exit_code, 0);
  const Result scrape = curl({"-D", "-", url});
  ASSERT_EQ(scrape.exit_code, 0) << scrape.err;
  const std::string& text = scrape.out;
  EXPECT_NE(text.find("HTTP/1.1 200 OK"), std::string::npos) << text;
  EXPECT_NE(text.find("Content-Type: text/plain; version=0.0.4; charset=utf-8"), std::string::npos);
  for (const std::string expected : {
           "procpool_daemon_programs 1\n",
           "procpool_program_up{program=\"web\",slot=\"1\"} 1\n",
           "procpool_program_state{program=\"web\",slot=\"0\",state=\"ready\"} 1\n",
           "procpool_program_restarts_total{program=\"web\",slot=\"0\"} 1\n",
           "# TYPE procpool_program_cpu_seconds_total counter\n",
           "procpool_pool_workers{pool=\"inc\",state=\"ready\"} 1\n",
           "# TYPE procpool_pool_queue_wait_seconds histogram\n",
           "procpool_pool_run_time_seconds_bucket{pool=\"inc\",le=\"+Inf\"} 0\n",
           "procpool_pool_run_time_seconds_count{pool=\"inc\"} 0\n",
           "procpool_pool_worker_resident_memory_bytes{pool=\"inc\",slot=\"0\"} ",
           "# TYPE process_cpu_seconds_total counter\n",
           "process_resident_memory_bytes ",
           "process_open_fds ",
       }) {
    EXPECT_NE(text.find(expected), std::string::npos) << "no " << expected << " in\n" << text;
  }
  EXPECT_EQ(text.find("pid="), std::string::npos) << "a pid label makes a series per restart";

  const std::string body = curl({url}).out;
  if (std::string(PROCPOOL_PROMTOOL).empty()) {
    GTEST_SKIP() << "promtool not found: scripts/setup.sh puts it in build/tools";
  }
  const Result check = run_program({PROCPOOL_PROMTOOL, "check", "metrics"}, body);
  EXPECT_EQ(check.exit_code, 0) << check.out << check.err;
  EXPECT_EQ(check.out + check.err, "") << "promtool's lint found problems";
}

TEST(DaemonMetrics, OtherPathsAndMethodsAreRefused) {
  Daemon daemon(sleeper("web"));
  daemon.start({}, {"--metrics", "0"});
  ASSERT_TRUE(daemon.wait_serving()) << daemon.stderr_text();
  const std::string url = metrics_url(daemon);
  const std::string root = url.substr(0, url.size() - std::string("/metrics").size());
  EXPECT_EQ(curl({"-o", "/dev/null", "-w", "%{http_code}", root + "/other"}).out, "404");
  EXPECT_EQ(curl({"-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", url}).out, "405");
  EXPECT_EQ(curl({"-o", "/dev/null", "-w", "%{http_code}", "-I", url}).out, "200");  // HEAD
  EXPECT_TRUE(daemon.status().is_object());
}

TEST(DaemonMetrics, AnAddressThatCannotBeServedStopsTheDaemonAtOnce) {
  Daemon daemon(sleeper("web"));
  const Result bad = run_procpool(
      {"run", "--socket", daemon.socket(), "--metrics", "localhost:x", daemon.config_path()});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("--metrics localhost:x: not PORT or HOST:PORT"), std::string::npos)
      << bad.err;

  // A port someone listens on already.
  const int taken = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(taken, reinterpret_cast<const sockaddr*>(&address), sizeof address), 0);
  ASSERT_EQ(::listen(taken, 1), 0);
  socklen_t length = sizeof address;
  ::getsockname(taken, reinterpret_cast<sockaddr*>(&address), &length);
  const std::string port = std::to_string(ntohs(address.sin_port));
  const Result busy =
      run_procpool({"run", "--socket", daemon.socket(), "--metrics", port, daemon.config_path()});
  ::close(taken);
  EXPECT_EQ(busy.exit_code, 2);
  EXPECT_NE(busy.err.find("--metrics " + port + ": cannot listen: Address already in use"),
            std::string::npos)
      << busy.err;
  EXPECT_EQ(busy.err.find("started"), std::string::npos) << "nothing is started: " << busy.err;
}

}  // namespace
}  // namespace procpool::map_test
