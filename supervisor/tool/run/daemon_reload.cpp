// Daemon::reload: a re-read config applied to the running daemon (daemon.hpp says what each
// kind of change gets; docs/control.md, "reload").

#include <algorithm>  // std::find_if
#include <chrono>     // the reload's duration
#include <map>        // programs kept at their old config
#include <thread>     // sleep_for (ensure_ready's poll)

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

bool Daemon::ensure_ready(const DaemonConfig& next, const std::string& name,
                          std::chrono::steady_clock::time_point deadline) {
  if (ready(name)) return true;
  const ProgramConfig* program = program_named(next, name);
  if (program == nullptr) return false;
  for (const std::string& dependency : program->depends_on) {
    if (!ensure_ready(next, dependency, deadline)) return false;
  }
  bool start = false;
  {
    const std::lock_guard lock(mutex_);
    if (std::find(started_.begin(), started_.end(), name) == started_.end()) {
      started_.push_back(name);
      start = true;
    }
  }
  if (start) {
    try {
      supervisor_.start(name);
    } catch (const SupervisorError& e) {
      reporter_.message("program '" + name + "': " + e.what());
      return false;
    }
  }
  // Bounded by the dependent's ready_timeout; the poll interval is not a synchronisation.
  while (!ready(name)) {
    if (cancelled_ || std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

boost::json::object Daemon::reload(DaemonConfig next) {
  const auto began = std::chrono::steady_clock::now();
  boost::json::array added, removed, changed, unchanged, failed;
  std::map<std::string, ProgramConfig> kept_old;  // failed updates: they keep their config
  // Worked on as a copy, the lock not held while programs and pools start and stop (status is
  // answered meanwhile, from the old config); swapped in at the end. Only a reload writes
  // config_ and pools_, and one runs at a time.
  DaemonConfig current;
  std::vector<std::shared_ptr<Pool>> current_pools;
  {
    const std::lock_guard lock(mutex_);
    reloading_ = true;
    current = config_;
    current_pools = pools_;
  }
  struct EndOfReload {
    std::atomic<bool>& reloading;
    ~EndOfReload() { reloading = false; }  // also if something throws
  } end_of_reload{reloading_};
  const auto interrupted = [&](const std::string& name) {
    failed.emplace_back(failure(name, "not applied: the daemon is stopping"));
  };

  // 1. Pools: a changed one is replaced by a new pool, ready before the old one drains.
  std::vector<std::shared_ptr<Pool>> pools;
  std::vector<PoolConfig> pool_configs;
  for (const PoolConfig& pool : next.pools) {
    const PoolConfig* old = pool_named(current, pool.name);
    std::shared_ptr<Pool>* old_pool = nullptr;
    if (old != nullptr) {
      old_pool = &current_pools[static_cast<std::size_t>(old - current.pools.data())];
    }
    if (old != nullptr && (old->fingerprint == pool.fingerprint || cancelled_)) {
      if (old->fingerprint != pool.fingerprint) interrupted(pool.name);
      pools.push_back(std::move(*old_pool));
      pool_configs.push_back(*old);
      unchanged.emplace_back(pool.name);
      continue;
    }
    if (cancelled_) {
      interrupted(pool.name);
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

  // 2. Changed and new programs, in the new start order: each after the programs it depends
  // on, which are started and waited for (at most its ready_timeout) before it is updated.
  for (const ProgramConfig* program : start_order(next)) {
    const std::string& name = program->spec.name;
    const ProgramConfig* old = program_named(current, name);
    if (old != nullptr && old->fingerprint == program->fingerprint) {
      unchanged.emplace_back(name);
      continue;
    }
    if (cancelled_) {
      interrupted(name);
      if (old != nullptr) kept_old.emplace(name, *old);
      continue;
    }
    if (old == nullptr) {
      try {
        supervisor_.add(prepared_spec(*program));
        reporter_.add_program(name, program->spec.readiness != ReadinessMode::Started,
                              program->spec.restart_mode);
        added.emplace_back(name);  // started once its dependencies are ready
      } catch (const SupervisorError& e) {
        failed.emplace_back(failure(name, e.what()));
      }
      continue;
    }
    const auto deadline = std::chrono::steady_clock::now() + program->ready_timeout;
    std::string not_ready;
    for (const std::string& dependency : program->depends_on) {
      if (!ensure_ready(next, dependency, deadline)) not_ready = dependency;
    }
    if (!not_ready.empty()) {
      failed.emplace_back(failure(name, "not updated: it depends on '" + not_ready +
                                            "', not ready within its ready_timeout"));
      kept_old.emplace(name, *old);
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

  // 3. Programs gone from the config, last (dependents first, as at a shutdown), unless a
  // program that kept its old config still depends on one.
  const std::vector<const ProgramConfig*> old_order = start_order(current);
  for (auto it = old_order.rbegin(); it != old_order.rend(); ++it) {
    const std::string& name = (*it)->spec.name;
    if (program_named(next, name) != nullptr) continue;
    std::string needed_by;
    for (const auto& [kept, config] : kept_old) {
      if (std::find(config.depends_on.begin(), config.depends_on.end(), name) !=
          config.depends_on.end()) {
        needed_by = kept;
      }
    }
    if (cancelled_ || !needed_by.empty()) {
      failed.emplace_back(failure(
          name, cancelled_
                    ? std::string("not removed: the daemon is stopping")
                    : "not removed: '" + needed_by + "', whose update failed, depends on it"));
      kept_old.emplace(name, **it);
      continue;
    }
    reporter_.message("reload: removing program '" + name + "'");
    try {
      supervisor_.remove(name);
      removed.emplace_back(name);
      const std::lock_guard lock(mutex_);
      std::erase(started_, name);
    } catch (const SupervisorError& e) {
      failed.emplace_back(failure(name, e.what()));
      kept_old.emplace(name, **it);
    }
  }

  // The new config, in its file's order, with the programs that failed to update (or to be
  // removed) as they were; an added program that could not be added is left out.
  std::vector<ProgramConfig> programs;
  for (ProgramConfig& program : next.programs) {
    const std::string name = program.spec.name;
    if (const auto it = kept_old.find(name); it != kept_old.end()) {
      programs.push_back(it->second);
      kept_old.erase(it);
    } else if (program_named(current, name) != nullptr ||
               std::any_of(added.begin(), added.end(),
                           [&](const boost::json::value& v) { return v.as_string() == name; })) {
      programs.push_back(std::move(program));
    }
  }
  for (auto& [name, config] : kept_old) programs.push_back(config);  // kept, not in the file
  {
    const std::lock_guard lock(mutex_);
    config_.programs = std::move(programs);
    note_give_up_actions();
    publish_view();
    reloading_ = false;
  }
  if (failed.empty()) {
    reloads_ok_.fetch_add(1);
  } else {
    reloads_failed_.fetch_add(1);
  }
  if (!cancelled_) start_ready_programs();

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
