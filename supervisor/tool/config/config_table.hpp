#pragma once

// One table of a config file ([[program]], [[pool]]) read key by key, typed: each getter names
// the key as known, checks the value's type and range, and records a ConfigProblem at the
// value's position when it is wrong. finish() reports every key no getter asked for, with the
// closest known one ("did you mean").

#include <chrono>       // durations
#include <cstdint>      // sizes
#include <span>         // choices
#include <string>       // values
#include <string_view>  // keys
#include <utility>      // std::pair
#include <vector>       // known keys, problems

#include <toml++/toml.h>

#include "config/config_problem.hpp"

namespace procpool::tool {

class ConfigTable {
 public:
  // `what` names the table in messages ("program 'web'").
  ConfigTable(const toml::table& table, std::string what, std::vector<ConfigProblem>& problems);

  // Each returns true if the key is present with a valid value (stored in `out`); absent, it
  // leaves `out` alone (a problem only if `required`); invalid, it records a problem.
  bool string(std::string_view key, std::string& out, bool required = false);
  bool strings(std::string_view key, std::vector<std::string>& out);  // an array of strings
  // A table of strings: ENV = { NAME = "value" }, in the file's order.
  bool string_table(std::string_view key, std::vector<std::pair<std::string, std::string>>& out);
  bool count(std::string_view key, unsigned& out, unsigned min, unsigned max);
  bool count64(std::string_view key, std::uint64_t& out);  // a whole number >= 0
  // A string with a unit: "500ms", "2s", "1.5m", "1h" (common/duration.hpp).
  bool duration(std::string_view key, std::chrono::milliseconds& out);
  // A whole number of bytes, or a string with K, M, G or T (powers of 1024): "512M".
  bool byte_size(std::string_view key, std::uint64_t& out);
  // One of `choices` (a string), as its index.
  bool choice(std::string_view key, std::size_t& out, std::span<const std::string_view> choices);
  // A signal: its name ("SIGTERM", "TERM") or number.
  bool signal(std::string_view key, int& out);
  // A file mode (a umask): an integer (TOML's 0o027) or a string of octal digits ("027").
  bool file_mode(std::string_view key, int& out);

  // A problem at the table itself (a missing key, a rule across keys).
  void problem(std::string message);
  // A problem at `key`'s value, if present (else at the table).
  void problem_at(std::string_view key, std::string message);
  // Reports the keys no getter asked for. Call once, after the getters.
  void finish();

  const std::string& what() const noexcept { return what_; }
  const toml::table& table() const noexcept { return table_; }

 private:
  // The value of `key`, known from now on; nullptr if absent.
  const toml::node* find(std::string_view key);
  void problem_at(const toml::source_region& where, std::string message);
  void wrong(std::string_view key, const toml::node& node, std::string_view expected);

  const toml::table& table_;
  std::string what_;
  std::vector<ConfigProblem>& problems_;
  std::vector<std::string_view> known_;
};

}  // namespace procpool::tool
