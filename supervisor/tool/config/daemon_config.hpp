#pragma once

// The daemon's config file (docs/config.md): [[program]] sections for long-running programs,
// [[pool]] sections for task pools. Read with toml++; every problem is collected with its
// position, so `procpool check` reports them all at once.

#include <chrono>    // ready_timeout
#include <cstdint>   // positions
#include <optional>  // the control group
#include <string>    // names
#include <string_view>
#include <vector>  // programs, pools, problems

#include "config/config_problem.hpp"
#include "procpool/pool_options.hpp"
#include "procpool/program_spec.hpp"

namespace procpool::tool {

struct ProgramConfig {
  ProgramSpec spec;
  // Programs started only once these are ready, and stopped before them.
  std::vector<std::string> depends_on;
  // on_give_up = "exit": once an instance gives up (RestartPolicy::give_up_after), the daemon
  // stops everything and exits (kExitGaveUp), so its service manager acts. Else it stays
  // stopped and the daemon goes on.
  bool exit_on_give_up = false;
  // How `procpool reload` replaces its instances when its section changed (UpdateOptions).
  unsigned max_unavailable = 0;
  std::chrono::milliseconds ready_timeout{60000};
  // What reload compares: its section as toml++ prints it (keys sorted), and its env_file's
  // variables. Equal: unchanged, its instances left alone.
  std::string fingerprint;
  std::uint32_t line = 0;  // of its [[program]] header
};

struct PoolConfig {
  std::string name;
  PoolOptions options;
  std::string fingerprint;  // as ProgramConfig's
  std::uint32_t line = 0;
};

struct DaemonConfig {
  std::vector<ProgramConfig> programs;  // in the file's order
  std::vector<PoolConfig> pools;
  // [control] group: its members may use the control socket too (read at start, not reload).
  std::optional<unsigned> control_group;
  std::string control_group_name;
};

struct ConfigLoad {
  DaemonConfig config;                  // meaningful only if problems is empty
  std::vector<ConfigProblem> problems;  // in the file's order
  bool ok() const noexcept { return problems.empty(); }
};

// `text` as a config file called `source_name` in messages.
ConfigLoad parse_config(std::string_view text, std::string_view source_name);
// The file at `path` (a problem without a position if it cannot be read).
ConfigLoad load_config_file(const std::string& path);

// The programs in start order: each after every program it depends on (file order otherwise).
// The config must be valid (no unknown name, no cycle).
std::vector<const ProgramConfig*> start_order(const DaemonConfig& config);

}  // namespace procpool::tool
