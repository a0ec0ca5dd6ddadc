#pragma once

// The pool's handler names and their ids (the ids go in every task frame). The first worker's
// READY sets the list; every later worker must announce the same one, or it is killed for a
// HandlerMismatch: a pool serves one program. Guarded by PoolCore's mutex.

#include <cstdint>        // ids
#include <functional>     // std::hash, std::equal_to
#include <optional>       // std::optional
#include <string>         // names
#include <string_view>    // lookups
#include <unordered_map>  // name -> id
#include <vector>         // id -> name

namespace procpool::detail {

class HandlerRegistry {
 public:
  enum class Announced : std::uint8_t {
    kAdopted,    // the first list: now the pool's
    kSame,       // as the pool's
    kDifferent,  // not the pool's: the worker is not of this pool's program
  };

  Announced announce(const std::vector<std::string>& names) {
    if (names_.empty()) {
      names_ = names;
      for (std::uint32_t i = 0; i < names_.size(); ++i) ids_.emplace(names_[i], i);
      return Announced::kAdopted;
    }
    return names == names_ ? Announced::kSame : Announced::kDifferent;
  }

  // The id of `name`, if a worker announced it. A run of tasks for one handler (the common
  // case) costs a string compare, not a hash lookup.
  std::optional<std::uint32_t> find(std::string_view name) {
    if (!last_.empty() && name == last_) return last_id_;
    const auto found = ids_.find(name);
    if (found == ids_.end()) return std::nullopt;
    last_.assign(name);
    last_id_ = found->second;
    return last_id_;
  }

  // The name of `id`, or "#<id>" for one no worker announced.
  std::string name(std::uint32_t id) const {
    if (id < names_.size()) return names_[id];
    // Appended, not "#" + std::to_string(): GCC 12 at -O2 warns (-Wrestrict, a false positive,
    // GCC bug 105329) on a literal plus a temporary string.
    std::string text = "#";
    text += std::to_string(id);
    return text;
  }

  const std::vector<std::string>& names() const noexcept { return names_; }

 private:
  struct StringHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept {
      return std::hash<std::string_view>{}(s);
    }
  };

  std::vector<std::string> names_;
  std::unordered_map<std::string, std::uint32_t, StringHash, std::equal_to<>> ids_;
  std::string last_;  // the last name looked up, and its id
  std::uint32_t last_id_ = 0;
};

}  // namespace procpool::detail
