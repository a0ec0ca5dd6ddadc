#include "config/daemon_config.hpp"

#include <algorithm>  // std::find_if, std::sort
#include <array>      // choices
#include <cerrno>     // errno
#include <cstring>    // std::strerror
#include <fstream>    // the file
#include <map>        // names
#include <optional>   // resolved paths
#include <sstream>    // the file's text

#include <grp.h>     // getgrnam_r
#include <unistd.h>  // access

#include <toml++/toml.h>

#include "config/config_table.hpp"
#include "config/did_you_mean.hpp"
#include "config/env_file.hpp"
#include "supervise/command_path.hpp"

namespace procpool::tool {
namespace {

constexpr std::array<std::string_view, 3> kRestartModes = {"always", "on-failure", "never"};
constexpr std::array<std::string_view, 3> kReadiness = {"started", "notify", "tcp"};
constexpr std::array<std::string_view, 3> kSections = {"program", "pool", "control"};
constexpr std::array<std::string_view, 2> kGiveUpActions = {"stop", "exit"};

bool valid_name(std::string_view name) {
  return !name.empty() && name.size() <= 64 && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.';
  });
}

// A command that cannot be run is the config's problem, reported now rather than as a crash
// loop of failed starts: a path (with a '/') must be executable, a bare name found in $PATH, as
// execvp would. Returns where it is.
std::optional<std::string> runnable(ConfigTable& t, std::string_view key,
                                    const std::string& command) {
  if (command.empty()) return std::nullopt;
  CommandPath found = find_command(command);
  if (found.path.empty()) {
    t.problem_at(key, "cannot run '" + command + "': " + std::strerror(found.error) +
                          (command.find('/') == std::string::npos ? " (looked up in $PATH)" : ""));
    return std::nullopt;
  }
  return std::move(found.path);
}

// The keys every restart policy shares (ProgramSpec::restart, PoolOptions::restart).
void read_restart_policy(ConfigTable& t, RestartPolicy& policy) {
  t.duration("min_uptime", policy.min_uptime);
  t.duration("initial_backoff", policy.initial_backoff);
  t.duration("max_backoff", policy.max_backoff);
  t.count("crash_loop_after", policy.crash_loop_after, 0, 1'000'000);
  t.count("give_up_after", policy.give_up_after, 0, 1'000'000);
  if (policy.max_backoff < policy.initial_backoff) {
    t.problem_at("max_backoff", "max_backoff is below initial_backoff");
  }
}

ProgramConfig read_program(ConfigTable& t) {
  ProgramConfig program;
  ProgramSpec& spec = program.spec;
  program.line = static_cast<std::uint32_t>(t.table().source().begin.line);
  if (t.string("command", spec.command, true)) runnable(t, "command", spec.command);
  t.strings("args", spec.args);
  std::string env_file;
  if (t.string("env_file", env_file)) {
    EnvFileRead read = read_env_file(env_file);
    if (!read.error.empty()) {
      t.problem_at("env_file", "env_file " + env_file + ": " + read.error);
    } else {
      spec.env = std::move(read.variables);
    }
    // Its variables are part of what reload compares.
    for (const auto& [name, value] : spec.env) {
      program.fingerprint.append(name).append("=").append(value).push_back('\0');
    }
  }
  // env overrides env_file (the later one wins in the child's environment).
  std::vector<std::pair<std::string, std::string>> env;
  if (t.string_table("env", env)) spec.env.insert(spec.env.end(), env.begin(), env.end());
  t.string("cwd", spec.working_directory);
  // Another user: only a daemon run as root can (the library refuses it otherwise; said here
  // so that `procpool check` says it too).
  const bool has_user = t.string("user", spec.user);
  const bool has_group = t.string("group", spec.group);
  if ((has_user || has_group) && ::geteuid() != 0) {
    t.problem_at(has_user ? "user" : "group",
                 std::string(has_user ? "user" : "group") +
                     " needs procpool run to run as root (this is uid " +
                     std::to_string(::geteuid()) + ")");
  }
  t.file_mode("umask", spec.umask);
  t.count("numprocs", spec.numprocs, 1, 1024);
  t.count("max_unavailable", program.max_unavailable, 0, 1024);
  t.duration("ready_timeout", program.ready_timeout);
  std::size_t index = 0;
  if (t.choice("restart", index, kRestartModes))
    spec.restart_mode = static_cast<RestartMode>(index);
  read_restart_policy(t, spec.restart);
  t.signal("stop_signal", spec.stop_signal);
  t.duration("stop_grace", spec.stop_grace);
  if (t.choice("readiness", index, kReadiness)) {
    spec.readiness = index == 0   ? ReadinessMode::Started
                     : index == 1 ? ReadinessMode::Notify
                                  : ReadinessMode::TcpPort;
  }
  unsigned port = 0;
  if (t.count("ready_port", port, 1, 65535)) spec.ready_port = static_cast<unsigned short>(port);
  if (spec.readiness == ReadinessMode::TcpPort && spec.ready_port == 0) {
    t.problem_at("readiness", "readiness = \"tcp\" needs ready_port");
  }
  if (spec.readiness != ReadinessMode::TcpPort && spec.ready_port != 0) {
    t.problem_at("ready_port", "ready_port is used only with readiness = \"tcp\"");
  }
  if ((has_user || has_group) && spec.readiness == ReadinessMode::Notify) {
    // The notify socket is the daemon's, 0600 in a 0700 directory: another user cannot send.
    t.problem_at("readiness",
                 "readiness = \"notify\" works only for programs of the daemon's own user "
                 "(its notify socket is private): use \"tcp\" or \"started\" with user or group");
  }
  t.duration("start_timeout", spec.start_timeout);
  t.duration("watchdog", spec.watchdog);
  if (spec.watchdog.count() != 0 && spec.readiness != ReadinessMode::Notify) {
    t.problem_at("watchdog",
                 "watchdog needs readiness = \"notify\" (the pings come through "
                 "$NOTIFY_SOCKET)");
  }
  t.byte_size("memory_soft_limit", spec.memory_soft_limit);
  t.byte_size("memory_hard_limit", spec.memory_hard_limit);
  if (spec.memory_soft_limit != 0 && spec.memory_hard_limit != 0 &&
      spec.memory_hard_limit < spec.memory_soft_limit) {
    t.problem_at("memory_hard_limit", "memory_hard_limit is below memory_soft_limit");
  }
  t.duration("health_interval", spec.health_interval);
  t.strings("depends_on", program.depends_on);
  if (t.choice("on_give_up", index, kGiveUpActions)) {
    program.exit_on_give_up = index == 1;
    if (spec.restart.give_up_after == 0) {
      t.problem_at("on_give_up", "on_give_up needs give_up_after (0: the program never gives up)");
    }
  }
  // Its stdout and stderr to one file (one writer, so one rotation), as procpool supervise
  // --log does: rotated at log_max_size to log.1 .. log.KEEP.
  OutputSink log;
  const bool has_log = t.string("log", log.file);
  const bool has_size = t.byte_size("log_max_size", log.max_bytes);
  const bool has_keep = t.count("log_keep", log.keep, 1, 100);
  if (has_log) {
    const std::size_t slash = log.file.find_last_of('/');
    const std::string dir =
        slash == std::string::npos ? "." : log.file.substr(0, std::max<std::size_t>(slash, 1));
    if (log.file.empty() || log.file.back() == '/') {
      t.problem_at("log", "log must name a file");
    } else if (::access(dir.c_str(), W_OK | X_OK) != 0) {
      t.problem_at("log", "cannot write log files in " + dir + ": " + std::strerror(errno));
    } else {
      spec.stdout_sink = log;
      spec.stderr_sink = log;
    }
  } else if (has_size || has_keep) {
    t.problem_at(has_size ? "log_max_size" : "log_keep", "log_max_size and log_keep need log");
  }
  return program;
}

PoolConfig read_pool(ConfigTable& t) {
  PoolConfig pool;
  PoolOptions& o = pool.options;
  pool.line = static_cast<std::uint32_t>(t.table().source().begin.line);
  // A pool execs its workers by path: a bare name is resolved here, once.
  if (t.string("executable", o.executable, true)) {
    if (auto path = runnable(t, "executable", o.executable)) o.executable = std::move(*path);
  }
  t.strings("args", o.args);
  t.string_table("env", o.env);
  t.string("worker_data", o.worker_data);
  t.count("min_workers", o.min_workers, 0, 1024);
  t.count("max_workers", o.max_workers, 0, 1024);
  if (o.max_workers != 0 && o.min_workers > o.max_workers) {
    t.problem_at("max_workers", "max_workers is below min_workers");
  }
  std::uint64_t max_queue = 0;
  if (t.count64("max_queue", max_queue)) o.max_queue = static_cast<std::size_t>(max_queue);
  t.count("pipeline_depth", o.pipeline_depth, 0, 65536);
  t.count("max_attempts", o.max_attempts, 1, 1000);
  t.byte_size("max_payload", o.max_payload);
  t.duration("idle_timeout", o.idle_timeout);
  t.duration("spawn_interval", o.spawn_interval);
  t.count64("max_tasks_per_worker", o.max_tasks_per_worker);
  t.byte_size("max_rss", o.max_rss);
  t.byte_size("max_rss_hard", o.max_rss_hard);
  t.duration("startup_timeout", o.startup_timeout);
  t.duration("heartbeat_interval", o.heartbeat_interval);
  t.count("heartbeat_misses", o.heartbeat_misses, 1, 1000);
  t.duration("cancel_grace", o.cancel_grace);
  t.duration("shutdown_grace", o.shutdown_grace);
  t.duration("stop_grace", o.stop_grace);
  read_restart_policy(t, o.restart);
  t.byte_size("ring_capacity", o.ring_capacity);
  t.byte_size("shared_memory_size", o.shared_memory_size);
  return pool;
}

// Every [[program]] or [[pool]] under `key`, each read by `read`.
template <class Config, class Read>
void read_sections(const toml::table& root, std::string_view key, std::string_view label,
                   std::vector<Config>& out, std::vector<ConfigProblem>& problems, Read read,
                   std::vector<std::pair<std::string, std::uint32_t>>& names) {
  const toml::node* node = root.get(key);
  if (node == nullptr) return;
  const toml::array* array = node->as_array();
  if (array == nullptr || !array->is_array_of_tables()) {
    problems.push_back({static_cast<std::uint32_t>(node->source().begin.line),
                        static_cast<std::uint32_t>(node->source().begin.column),
                        std::string(key) + " must be an array of tables: write each as [[" +
                            std::string(key) + "]]"});
    return;
  }
  std::size_t index = 0;
  for (const toml::node& item : *array) {
    const toml::table& table = *item.as_table();
    std::string name;
    const toml::node* name_node = table.get("name");
    if (name_node != nullptr) name = name_node->value_exact<std::string>().value_or("");
    ConfigTable t(table,
                  name.empty() ? std::string(label) + " #" + std::to_string(index + 1)
                               : std::string(label) + " '" + name + "'",
                  problems);
    t.string("name", name, true);
    if (!name.empty() && !valid_name(name)) {
      t.problem_at("name", "name must be 1 to 64 letters, digits, '-', '_' or '.'");
    }
    auto config = read(t);
    t.finish();
    std::ostringstream printed;
    printed << table;
    config.fingerprint.append(printed.str());
    names.emplace_back(name, static_cast<std::uint32_t>(table.source().begin.line));
    if constexpr (std::is_same_v<Config, ProgramConfig>) {
      config.spec.name = name;
    } else {
      config.name = name;
    }
    out.push_back(std::move(config));
    ++index;
  }
}

// [control]: who besides the daemon's own user may use the control socket.
void read_control(const toml::table& root, DaemonConfig& config,
                  std::vector<ConfigProblem>& problems) {
  const toml::node* node = root.get("control");
  if (node == nullptr) return;
  const toml::table* table = node->as_table();
  if (table == nullptr) {
    problems.push_back({static_cast<std::uint32_t>(node->source().begin.line),
                        static_cast<std::uint32_t>(node->source().begin.column),
                        "control must be a table: write it as [control]"});
    return;
  }
  ConfigTable t(*table, "[control]", problems);
  std::string group;
  if (t.string("group", group)) {
    std::vector<char> buffer(16384);
    ::group entry{};
    ::group* found = nullptr;
    while (::getgrnam_r(group.c_str(), &entry, buffer.data(), buffer.size(), &found) == ERANGE) {
      buffer.resize(buffer.size() * 2);
    }
    if (found == nullptr) {
      t.problem_at("group", "no group named '" + group + "'");
    } else {
      config.control_group = found->gr_gid;
      config.control_group_name = group;
    }
  }
  t.finish();
}

// depends_on: known programs, no program itself, no cycle.
void check_dependencies(const DaemonConfig& config, const toml::table& root,
                        std::vector<ConfigProblem>& problems) {
  std::map<std::string, std::size_t> index;
  for (std::size_t i = 0; i < config.programs.size(); ++i) index[config.programs[i].spec.name] = i;
  std::vector<std::string_view> names;
  for (const auto& program : config.programs) names.push_back(program.spec.name);
  const toml::array* sections = root.get("program") ? root.get("program")->as_array() : nullptr;
  auto where = [&](std::size_t program) -> toml::source_position {
    const toml::table* table = sections != nullptr ? (*sections)[program].as_table() : nullptr;
    const toml::node* node = table != nullptr ? table->get("depends_on") : nullptr;
    return node != nullptr ? node->source().begin : toml::source_position{};
  };
  bool known = true;
  for (std::size_t i = 0; i < config.programs.size(); ++i) {
    for (const std::string& dependency : config.programs[i].depends_on) {
      const toml::source_position at = where(i);
      const std::string who = "program '" + config.programs[i].spec.name + "'";
      if (dependency == config.programs[i].spec.name) {
        problems.push_back({at.line, at.column, who + " depends on itself"});
        known = false;
      } else if (index.find(dependency) == index.end()) {
        std::string message = who + ": depends_on names no program: '" + dependency + "'";
        if (const auto near = closest_word(dependency, names)) {
          message += " (did you mean '" + std::string(*near) + "'?)";
        }
        problems.push_back({at.line, at.column, std::move(message)});
        known = false;
      }
    }
  }
  if (!known) return;
  // A cycle: depth-first, colouring programs in progress; reported once, at its first program.
  std::vector<int> state(config.programs.size(), 0);  // 0 new, 1 on the path, 2 done
  std::vector<std::size_t> path;
  bool reported = false;
  auto visit = [&](auto& self, std::size_t i) -> void {
    if (reported || state[i] == 2) return;
    if (state[i] == 1) {
      std::string cycle;
      const auto from = std::find(path.begin(), path.end(), i);
      for (auto it = from; it != path.end(); ++it) cycle += config.programs[*it].spec.name + " -> ";
      cycle += config.programs[i].spec.name;
      const toml::source_position at = where(*from);
      problems.push_back({at.line, at.column, "depends_on makes a cycle: " + cycle});
      reported = true;
      return;
    }
    state[i] = 1;
    path.push_back(i);
    for (const std::string& dependency : config.programs[i].depends_on)
      self(self, index[dependency]);
    path.pop_back();
    state[i] = 2;
  };
  for (std::size_t i = 0; i < config.programs.size(); ++i) visit(visit, i);
}

}  // namespace

ConfigLoad parse_config(std::string_view text, std::string_view source_name) {
  ConfigLoad load;
  toml::table root;
  try {
    root = toml::parse(text, source_name);
  } catch (const toml::parse_error& error) {
    load.problems.push_back({static_cast<std::uint32_t>(error.source().begin.line),
                             static_cast<std::uint32_t>(error.source().begin.column),
                             std::string(error.description())});
    return load;
  }
  std::vector<std::pair<std::string, std::uint32_t>> names;
  read_sections(root, "program", "program", load.config.programs, load.problems, read_program,
                names);
  read_sections(root, "pool", "pool", load.config.pools, load.problems, read_pool, names);
  read_control(root, load.config, load.problems);
  for (const auto& [key, value] : root) {
    if (std::find(kSections.begin(), kSections.end(), key.str()) != kSections.end()) continue;
    std::string message = "unknown top-level key '" + std::string(key.str()) + "'";
    if (const auto near = closest_word(key.str(), kSections)) {
      message += *near == "control" ? " (did you mean [control]?)"
                                    : " (did you mean [[" + std::string(*near) + "]]?)";
    } else {
      message += " (a config holds [[program]] and [[pool]] sections, and [control])";
    }
    load.problems.push_back({static_cast<std::uint32_t>(key.source().begin.line),
                             static_cast<std::uint32_t>(key.source().begin.column),
                             std::move(message)});
  }
  // Names are unique across programs and pools: the control commands take either.
  std::map<std::string, std::uint32_t> first;
  for (const auto& [name, line] : names) {
    if (name.empty()) continue;
    const auto [it, fresh] = first.emplace(name, line);
    if (!fresh) {
      load.problems.push_back(
          {line, 1,
           "the name '" + name + "' is taken already (line " + std::to_string(it->second) + ")"});
    }
  }
  check_dependencies(load.config, root, load.problems);
  std::stable_sort(load.problems.begin(), load.problems.end(),
                   [](const ConfigProblem& a, const ConfigProblem& b) {
                     return a.line != b.line ? a.line < b.line : a.column < b.column;
                   });
  return load;
}

ConfigLoad load_config_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    ConfigLoad load;
    load.problems.push_back({0, 0, std::string("cannot read it: ") + std::strerror(errno)});
    return load;
  }
  std::ostringstream text;
  text << in.rdbuf();
  return parse_config(text.str(), path);
}

std::vector<const ProgramConfig*> start_order(const DaemonConfig& config) {
  std::vector<const ProgramConfig*> order;
  std::vector<bool> placed(config.programs.size(), false);
  auto place = [&](auto& self, std::size_t i) -> void {
    if (placed[i]) return;
    placed[i] = true;
    for (const std::string& dependency : config.programs[i].depends_on) {
      const auto it =
          std::find_if(config.programs.begin(), config.programs.end(),
                       [&](const ProgramConfig& p) { return p.spec.name == dependency; });
      if (it != config.programs.end())
        self(self, static_cast<std::size_t>(it - config.programs.begin()));
    }
    order.push_back(&config.programs[i]);
  };
  for (std::size_t i = 0; i < config.programs.size(); ++i) place(place, i);
  return order;
}

}  // namespace procpool::tool
