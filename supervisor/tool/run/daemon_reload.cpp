// Daemon::reload: a re-read config applied to the running daemon (daemon.hpp says what each
// kind of change gets; docs/control.md, "reload").

#include <algorithm>  // std::find_if
#include <chrono>     // the reload's duration
#include <map>        // programs kept at their old config

#include <boost/json.hpp>

#include "run/daemon.hpp"

namespace procpool::tool {
namespace {

template <class Config, class Name>
const Config* named(const std::vector<Config>& configs, const std::string& name, Name name_of) {
  const auto it = std::find_if(configs.begin(), configs.end(),
                               [&](const Config& c) { return name_of(c) == name; });
  return it == configs.end() ? nullptr : &*it;
}

const ProgramConfig* program_named(const DaemonConfig& config, const std::string& name) {
  return named(config.programs, name, [](const ProgramConfig& p) { return p.spec.name; });
}

const PoolConfig* pool_named(const DaemonConfig& config, const std::string& name) {
  return named(config.pools, name, [](const PoolConfig& p) { return p.name; });
}

boost::json::object failure(const std::string& name, const std::string& error) {
  boost::json::object entry;
  entry["name"] = name;
  entry["error"] = error;
  return entry;
}

}  // namespace

boost::json::object Daemon::reload(DaemonConfig next) {
  const auto began = std::chrono::steady_clock::now();
  boost::json::array added, removed, changed, unchanged, failed;
  std::map<std::string, ProgramConfig> kept_old;  // failed updates: they keep their config
  // Worked on as a copy, the lock not held while programs and pools start and stop (status is
  // answered meanwhile, from the old config); swapped in at the end. Only a reload writes
  // config_ and pools_, and one runs at a time.
  reloading_ = true;
  struct EndOfReload {
    std::atomic<bool>& reloading;
    ~EndOfReload() { reloading = false; }  // also if something throws
  } end_of_reload{reloading_};
  DaemonConfig current;
  std::vector<std::shared_ptr<Pool>> current_pools;
  {
    const std::lock_guard lock(mutex_);
    current = config_;
    current_pools = pools_;
  }

  // 1. Programs gone from the config: dependents first, as at a shutdown.
  const std::vector<const ProgramConfig*> old_order = start_order(current);
  for (auto it = old_order.rbegin(); it != old_order.rend(); ++it) {
    const std::string& name = (*it)->spec.name;
    if (program_named(next, name) != nullptr) continue;
    reporter_.message("reload: removing program '" + name + "'");
    try {
      supervisor_.remove(name);
      removed.emplace_back(name);
    } catch (const SupervisorError& e) {
      failed.emplace_back(failure(name, e.what()));
    }
    const std::lock_guard lock(mutex_);
    std::erase(started_, name);
  }

  // 2. Pools: a changed one is replaced by a new pool, ready before the old one drains.
  std::vector<std::shared_ptr<Pool>> pools;
  std::vector<PoolConfig> pool_configs;
  for (const PoolConfig& pool : next.pools) {
    const PoolConfig* old = pool_named(current, pool.name);
    std::shared_ptr<Pool>* old_pool = nullptr;
    if (old != nullptr) {
      old_pool = &current_pools[static_cast<std::size_t>(old - current.pools.data())];
    }
    if (old != nullptr && old->fingerprint == pool.fingerprint) {
      pools.push_back(std::move(*old_pool));
      pool_configs.push_back(*old);
      unchanged.emplace_back(pool.name);
      continue;
    }
    reporter_.message("reload: " + std::string(old != nullptr ? "replacing" : "starting") +
                      " pool '" + pool.name + "'");
    std::shared_ptr<Pool> fresh;
    try {
      fresh = std::make_shared<Pool>(pool.options);
    } catch (const Error& e) {
      failed.emplace_back(failure(pool.name, e.what()));
      if (old != nullptr) {  // the old pool goes on
        pools.push_back(std::move(*old_pool));
        pool_configs.push_back(*old);
      }
      continue;
    }
    if (old != nullptr) {
      (*old_pool)->shutdown();  // its queued and running tasks finish
      old_pool->reset();
    }
    pools.push_back(std::move(fresh));
    pool_configs.push_back(pool);
    (old != nullptr ? changed : added).emplace_back(pool.name);
  }
  for (std::size_t i = 0; i < current.pools.size(); ++i) {
    if (!current_pools[i]) continue;  // moved on, or replaced
    reporter_.message("reload: draining pool '" + current.pools[i].name + "'");
    current_pools[i]->shutdown();
    removed.emplace_back(current.pools[i].name);
  }
  {
    const std::lock_guard lock(mutex_);
    pools_ = std::move(pools);
    config_.pools = std::move(pool_configs);
    publish_view();
  }

  // 3. Changed and new programs, in the new start order: a program is updated after the ones
  // it depends on.
  for (const ProgramConfig* program : start_order(next)) {
    const std::string& name = program->spec.name;
    const ProgramConfig* old = program_named(current, name);
    if (old == nullptr) {
      try {
        supervisor_.add(prepared_spec(*program));
        reporter_.add_program(name, program->spec.readiness != ReadinessMode::Started,
                              program->spec.restart_mode);
        added.emplace_back(name);  // started below, once its dependencies are ready
      } catch (const SupervisorError& e) {
        failed.emplace_back(failure(name, e.what()));
      }
      continue;
    }
    if (old->fingerprint == program->fingerprint) {
      unchanged.emplace_back(name);
      continue;
    }
    reporter_.message("reload: updating program '" + name + "'");
    UpdateOptions options;
    options.max_unavailable = program->max_unavailable;
    options.ready_timeout = program->ready_timeout;
    try {
      reporter_.add_program(name, program->spec.readiness != ReadinessMode::Started,
                            program->spec.restart_mode);
      supervisor_.update(prepared_spec(*program), options);
      changed.emplace_back(name);
    } catch (const SupervisorError& e) {
      reporter_.message("reload: program '" + name + "' not updated: " + e.what());
      reporter_.add_program(name, old->spec.readiness != ReadinessMode::Started,
                            old->spec.restart_mode);
      failed.emplace_back(failure(name, e.what()));
      kept_old.emplace(name, *old);
    }
  }
  // The new config, in its file's order, but with the programs that failed to update as they
  // were (an added program that could not be added is left out).
  std::vector<ProgramConfig> programs;
  for (ProgramConfig& program : next.programs) {
    const std::string name = program.spec.name;
    if (const auto it = kept_old.find(name); it != kept_old.end()) {
      programs.push_back(it->second);
    } else if (program_named(current, name) != nullptr ||
               std::any_of(added.begin(), added.end(),
                           [&](const boost::json::value& v) { return v.as_string() == name; })) {
      programs.push_back(std::move(program));
    }
  }
  {
    const std::lock_guard lock(mutex_);
    config_.programs = std::move(programs);
    note_give_up_actions();
    publish_view();
  }
  reloading_ = false;
  if (failed.empty()) {
    reloads_ok_.fetch_add(1);
  } else {
    reloads_failed_.fetch_add(1);
  }
  start_ready_programs();

  boost::json::object reply;
  reply["ok"] = failed.empty();
  if (!failed.empty()) {
    std::string error;
    for (const boost::json::value& f : failed) {
      error.append(error.empty() ? "" : "; ")
          .append(f.at("name").as_string())
          .append(": ")
          .append(f.at("error").as_string());
    }
    reply["error"] = error;
  }
  reply["added"] = std::move(added);
  reply["removed"] = std::move(removed);
  reply["changed"] = std::move(changed);
  reply["unchanged"] = std::move(unchanged);
  reply["failed"] = std::move(failed);
  reply["seconds"] =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count();
  return reply;
}

}  // namespace procpool::tool
