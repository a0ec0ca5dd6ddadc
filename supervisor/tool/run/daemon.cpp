#include "run/daemon.hpp"

#include <sys/eventfd.h>  // eventfd_write
#include <unistd.h>       // STDERR_FILENO

#include <algorithm>  // std::find

#include <boost/json.hpp>

#include "common/error_stream.hpp"    // write_all
#include "common/event_reporter.hpp"  // describe_exit

namespace procpool::tool {
namespace {

// `on_stopped` sees every Stopped event first.
Supervisor::Options supervisor_options(EventReporter& reporter, int wake_fd,
                                       std::function<void(const SupervisorEvent&)> on_stopped) {
  Supervisor::Options options;
  options.on_event = [&reporter, wake_fd, on_stopped](const SupervisorEvent& event) {
    if (event.kind == SupervisorEvent::Kind::Stopped) on_stopped(event);
    reporter.on_event(event);
    (void)::eventfd_write(wake_fd, 1);
  };
  return options;
}

}  // namespace

Daemon::Daemon(DaemonConfig config, EventReporter& reporter, int wake_fd)
    : config_(std::move(config)),
      reporter_(reporter),
      supervisor_(supervisor_options(reporter, wake_fd, [this](const SupervisorEvent& event) {
        if (!event.gave_up) return;
        const std::lock_guard lock(gave_up_mutex_);
        if (gave_up_.empty() && exit_on_give_up_.count(event.program) != 0) {
          gave_up_ = event.name + " gave up after " + std::to_string(event.broken_in_a_row) +
                     " broken starts in a row (on_give_up = \"exit\")";
        }
      })) {
  note_give_up_actions();
  publish_view();
  for (ProgramConfig& program : config_.programs) {
    reporter_.add_program(program.spec.name, program.spec.readiness != ReadinessMode::Started,
                          program.spec.restart_mode);
    supervisor_.add(prepared_spec(program));
  }
}

ProgramSpec Daemon::prepared_spec(const ProgramConfig& program) {
  ProgramSpec spec = program.spec;
  // A program with a log file: its lines also reach our stderr (the terminal, or the journal
  // under systemd), each prefixed with its instance and pid ("[web:0 4242]"), since they
  // interleave there (a rolling update's old and new run of one instance, too). Waiting at
  // most a millisecond: a stderr with no room drops the copy, never the supervision behind it.
  for (OutputSink* sink : {&spec.stdout_sink, &spec.stderr_sink}) {
    if (sink->file.empty()) continue;
    sink->on_pid_line = [](std::string_view instance, int pid, std::string_view line) {
      std::string text;
      text.append("[")
          .append(instance)
          .append(" ")
          .append(std::to_string(pid))
          .append("] ")
          .append(line)
          .push_back('\n');
      (void)write_all(STDERR_FILENO, text.data(), text.size(),
                      std::chrono::steady_clock::now() + std::chrono::milliseconds(1));
    };
  }
  return spec;
}

void Daemon::publish_view() {
  View view;
  view.programs = config_.programs.size();
  for (std::size_t i = 0; i < pools_.size(); ++i) {
    view.pools.emplace_back(config_.pools[i].name, pools_[i]);
  }
  const std::lock_guard lock(view_mutex_);
  view_ = std::move(view);
}

void Daemon::note_give_up_actions() {
  const std::lock_guard lock(gave_up_mutex_);
  exit_on_give_up_.clear();
  for (const ProgramConfig& program : config_.programs) {
    if (program.exit_on_give_up) exit_on_give_up_.insert(program.spec.name);
  }
}

bool Daemon::started(const std::string& program) const {
  return std::find(started_.begin(), started_.end(), program) != started_.end();
}

Daemon::~Daemon() = default;

void Daemon::start_pools() {
  const std::lock_guard lock(mutex_);
  for (const PoolConfig& pool : config_.pools) {
    reporter_.message("pool '" + pool.name + "' starting");
    pools_.push_back(std::make_shared<Pool>(pool.options));
    publish_view();
    reporter_.message("pool '" + pool.name + "' ready (" +
                      std::to_string(pools_.back()->metrics().workers.size()) + " workers)");
  }
}

std::string Daemon::gave_up_exiting() const {
  const std::lock_guard lock(gave_up_mutex_);
  return gave_up_;
}

bool Daemon::ready(const std::string& program) const {
  bool any = false;
  for (const ProcessStatus& status : supervisor_.status()) {
    if (status.program != program) continue;
    any = true;
    if (status.state != ProgramState::Ready) return false;
  }
  return any;
}

bool Daemon::all_ready() const {
  const std::lock_guard lock(mutex_);
  if (started_.size() != config_.programs.size()) return false;
  for (const ProgramConfig& program : config_.programs) {
    if (!ready(program.spec.name)) return false;
  }
  return true;
}

std::size_t Daemon::ready_programs() const {
  const std::lock_guard lock(mutex_);
  std::size_t count = 0;
  for (const ProgramConfig& program : config_.programs) count += ready(program.spec.name) ? 1 : 0;
  return count;
}

std::vector<std::string> Daemon::waiting_for(const ProgramConfig& program) const {
  std::vector<std::string> waiting;
  for (const std::string& dependency : program.depends_on) {
    if (!ready(dependency)) waiting.push_back(dependency);
  }
  return waiting;
}

void Daemon::start_ready_programs() {
  const std::lock_guard lock(mutex_);
  if (reloading_) return;  // the reload starts them at its end
  for (const ProgramConfig* program : start_order(config_)) {
    const std::string& name = program->spec.name;
    if (started(name)) continue;
    if (!waiting_for(*program).empty()) continue;
    started_.push_back(name);
    try {
      supervisor_.start(name);
    } catch (const SupervisorError& e) {
      // The instance is stopped; the daemon goes on (its status says so), as for a crash.
      reporter_.message("program '" + name + "': " + e.what());
    }
  }
}

boost::json::object Daemon::status(const std::string& name) const {
  const std::lock_guard lock(mutex_);
  boost::json::object reply;
  const bool program_named =
      std::any_of(config_.programs.begin(), config_.programs.end(),
                  [&](const ProgramConfig& p) { return p.spec.name == name; });
  const bool pool_named = std::any_of(config_.pools.begin(), config_.pools.end(),
                                      [&](const PoolConfig& p) { return p.name == name; });
  if (!name.empty() && !program_named && !pool_named) {
    reply["ok"] = false;
    reply["error"] = "no program or pool named '" + name + "'";
    return reply;
  }
  boost::json::array programs;
  const std::vector<ProcessStatus> statuses = supervisor_.status();
  for (const ProgramConfig& program : config_.programs) {
    if (!name.empty() && program.spec.name != name) continue;
    const bool running = started(program.spec.name);
    boost::json::array waiting;
    if (!running) {
      for (const std::string& dependency : waiting_for(program)) waiting.emplace_back(dependency);
    }
    for (const ProcessStatus& s : statuses) {
      if (s.program != program.spec.name) continue;
      boost::json::object entry;
      entry["name"] = s.name;
      entry["program"] = s.program;
      entry["instance"] = s.instance;
      entry["state"] = running ? to_string(s.state) : "waiting";
      if (!waiting.empty()) entry["waiting_for"] = waiting;
      entry["pid"] = s.pid;
      entry["uptime_s"] = static_cast<double>(s.uptime.count()) / 1e3;
      entry["restarts"] = s.restarts;
      entry["last_exit"] = s.last_exit ? boost::json::value(describe_exit(*s.last_exit))
                                       : boost::json::value(nullptr);
      entry["rss_bytes"] = s.rss_bytes;
      entry["cpu_s"] = s.cpu_seconds;
      entry["status_text"] = s.status_text;
      entry["log"] = program.spec.stdout_sink.file.empty()
                         ? boost::json::value(nullptr)
                         : boost::json::value(program.spec.stdout_sink.file);
      programs.emplace_back(std::move(entry));
    }
  }
  boost::json::array pools;
  for (std::size_t i = 0; i < pools_.size(); ++i) {
    if (!name.empty() && config_.pools[i].name != name) continue;
    boost::json::object entry;
    entry["name"] = config_.pools[i].name;
    entry["metrics"] = boost::json::parse(pools_[i]->metrics().to_json());
    pools.emplace_back(std::move(entry));
  }
  reply["ok"] = true;
  reply["programs"] = std::move(programs);
  reply["pools"] = std::move(pools);
  return reply;
}

boost::json::object Daemon::control(ControlRequest::Command command, const std::string& name) {
  boost::json::object reply;
  std::unique_lock lock(mutex_);  // not held while the Supervisor stops or starts it
  const auto program = std::find_if(config_.programs.begin(), config_.programs.end(),
                                    [&](const ProgramConfig& p) { return p.spec.name == name; });
  if (program == config_.programs.end()) {
    reply["ok"] = false;
    reply["error"] = "no program named '" + name + "'";
    return reply;
  }
  if (command != ControlRequest::Command::Stop) {
    if (const std::vector<std::string> waiting = waiting_for(*program); !waiting.empty()) {
      std::string names;
      for (const std::string& w : waiting) names += (names.empty() ? "" : ", ") + w;
      reply["ok"] = false;
      reply["error"] = "'" + name + "' waits for " + names + " to be ready";
      return reply;
    }
  }
  // Started from now on (by hand, or at once by the loop if it still waited).
  if (std::find(started_.begin(), started_.end(), name) == started_.end()) started_.push_back(name);
  lock.unlock();
  try {
    switch (command) {
      case ControlRequest::Command::Start:
        supervisor_.start(name);
        break;
      case ControlRequest::Command::Stop:
        supervisor_.stop(name);
        break;
      case ControlRequest::Command::Restart:
        supervisor_.restart(name);
        break;
      default:
        break;
    }
  } catch (const SupervisorError& e) {
    reply["ok"] = false;
    reply["error"] = e.what();
    return reply;
  }
  reply["ok"] = true;
  return reply;
}

void Daemon::kill_everything() {
  cancelled_ = true;
  supervisor_.kill_all();
  std::vector<std::shared_ptr<Pool>> pools;
  {
    const std::lock_guard lock(mutex_);
    pools = pools_;
  }
  for (auto& pool : pools) pool->terminate();
}

void Daemon::stop(bool fast) {
  const std::lock_guard lock(mutex_);
  if (fast) {
    supervisor_.kill_all();
    for (auto& pool : pools_) pool->terminate();
    return;
  }
  // Reverse start order: every program stops before the programs it depends on.
  for (auto it = started_.rbegin(); it != started_.rend(); ++it) supervisor_.stop(*it);
  for (auto& pool : pools_) pool->shutdown();
}

}  // namespace procpool::tool
