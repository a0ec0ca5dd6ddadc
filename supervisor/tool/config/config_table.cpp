#include "config/config_table.hpp"

#include <algorithm>  // std::find
#include <limits>     // std::numeric_limits
#include <optional>   // file modes

#include "common/duration.hpp"
#include "common/option_values.hpp"  // parse_byte_size
#include "config/did_you_mean.hpp"
#include "supervise/supervise_option_values.hpp"  // parse_stop_signal

namespace procpool::tool {
namespace {

std::string quoted(std::string_view text) {
  std::string out(1, '\'');  // not "'" + std::string: GCC 12's -Wrestrict misfires on it
  out.append(text).push_back('\'');
  return out;
}

std::string type_name(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a number";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::table:
      return "a table";
    default:
      return "a date or time";
  }
}

}  // namespace

ConfigTable::ConfigTable(const toml::table& table, std::string what,
                         std::vector<ConfigProblem>& problems)
    : table_(table), what_(std::move(what)), problems_(problems) {}

const toml::node* ConfigTable::find(std::string_view key) {
  known_.push_back(key);
  return table_.get(key);
}

void ConfigTable::problem_at(const toml::source_region& where, std::string message) {
  problems_.push_back(ConfigProblem{static_cast<std::uint32_t>(where.begin.line),
                                    static_cast<std::uint32_t>(where.begin.column),
                                    std::move(message)});
}

void ConfigTable::problem(std::string message) {
  problem_at(table_.source(), what_ + ": " + std::move(message));
}

void ConfigTable::problem_at(std::string_view key, std::string message) {
  const toml::node* node = table_.get(key);
  problem_at(node != nullptr ? node->source() : table_.source(), what_ + ": " + std::move(message));
}

void ConfigTable::wrong(std::string_view key, const toml::node& node, std::string_view expected) {
  problem_at(node.source(), what_ + ": " + std::string(key) + " must be " + std::string(expected) +
                                ", not " + type_name(node));
}

bool ConfigTable::string(std::string_view key, std::string& out, bool required) {
  const toml::node* node = find(key);
  if (node == nullptr) {
    if (required) problem("missing " + std::string(key));
    return false;
  }
  if (const auto value = node->value_exact<std::string>()) {
    if (required && value->empty()) {
      problem_at(node->source(), what_ + ": " + std::string(key) + " is empty");
      return false;
    }
    out = *value;
    return true;
  }
  wrong(key, *node, "a string");
  return false;
}

bool ConfigTable::strings(std::string_view key, std::vector<std::string>& out) {
  const toml::node* node = find(key);
  if (node == nullptr) return false;
  const toml::array* array = node->as_array();
  if (array == nullptr) {
    wrong(key, *node, "an array of strings");
    return false;
  }
  std::vector<std::string> values;
  for (const toml::node& item : *array) {
    const auto value = item.value_exact<std::string>();
    if (!value) {
      wrong(key, item, "an array of strings (each item a string)");
      return false;
    }
    values.push_back(*value);
  }
  out = std::move(values);
  return true;
}

bool ConfigTable::string_table(std::string_view key,
                               std::vector<std::pair<std::string, std::string>>& out) {
  const toml::node* node = find(key);
  if (node == nullptr) return false;
  const toml::table* table = node->as_table();
  if (table == nullptr) {
    wrong(key, *node, "a table of strings, like { NAME = \"value\" }");
    return false;
  }
  std::vector<std::pair<std::string, std::string>> values;
  bool ok = true;
  for (const auto& [name, value] : *table) {
    const auto text = value.value_exact<std::string>();
    if (!text) {
      wrong(std::string(key) + "." + std::string(name.str()), value, "a string");
      ok = false;
      continue;
    }
    if (name.str().empty() || name.str().find('=') != std::string_view::npos) {
      problem_at(name.source(), what_ + ": " + std::string(key) + ": " + quoted(name.str()) +
                                    " is not a variable name");
      ok = false;
      continue;
    }
    values.emplace_back(std::string(name.str()), *text);
  }
  if (ok) out = std::move(values);
  return ok;
}

bool ConfigTable::count(std::string_view key, unsigned& out, unsigned min, unsigned max) {
  const toml::node* node = find(key);
  if (node == nullptr) return false;
  const auto value = node->value_exact<std::int64_t>();
  if (!value) {
    wrong(key, *node, "a whole number");
    return false;
  }
  if (*value < min || *value > max) {
    problem_at(node->source(), what_ + ": " + std::string(key) + " must be from " +
                                   std::to_string(min) + " to " + std::to_string(max) + ", not " +
                                   std::to_string(*value));
    return false;
  }
  out = static_cast<unsigned>(*value);
  return true;
}

bool ConfigTable::file_mode(std::string_view key, int& out) {
  const toml::node* node = find(key);
  if (node == nullptr) return false;
  std::optional<std::int64_t> value = node->value_exact<std::int64_t>();
  if (const auto text = node->value_exact<std::string>()) {
    // "027", "0027", "0o027": octal digits.
    std::string digits = *text;
    if (digits.rfind("0o", 0) == 0) digits = digits.substr(2);
    if (!digits.empty() && digits.size() <= 4 &&
        digits.find_first_not_of("01234567") == std::string::npos) {
      value = std::stoll(digits, nullptr, 8);
    } else {
      value = std::nullopt;
    }
  }
  if (!value || *value < 0 || *value > 0777) {
    wrong(key, *node, "a file mode from 0 to 0o777: 0o027 (TOML's octal), or \"027\"");
    return false;
  }
  out = static_cast<int>(*value);
  return true;
}

bool ConfigTable::count64(std::string_view key, std::uint64_t& out) {
  const toml::node* node = find(key);
  if (node == nullptr) return false;
  const auto value = node->value_exact<std::int64_t>();
  if (!value || *value < 0) {
    wrong(key, *node, "a whole number, 0 or more");
    return false;
  }
  out = static_cast<std::uint64_t>(*value);
  return true;
}

bool ConfigTable::duration(std::string_view key, std::chrono::milliseconds& out) {
  const toml::node* node = find(key);
  if (node == nullptr) return false;
  const auto text = node->value_exact<std::string>();
  std::optional<std::chrono::milliseconds> value;
  if (text) value = parse_duration(*text);
  // A bare number is refused: seconds or milliseconds would be a guess.
  if (!value || (text && text->find_first_not_of("0123456789.") == std::string::npos &&
                 *value != value->zero())) {
    problem_at(node->source(),
               what_ + ": " + std::string(key) +
                   " must be a duration with its unit, like \"500ms\", \"2s\", \"1.5m\" or \"1h\"" +
                   (text ? ", not " + quoted(*text) : ", not " + type_name(*node)));
    return false;
  }
  out = *value;
  return true;
}

bool ConfigTable::byte_size(std::string_view key, std::uint64_t& out) {
  const toml::node* node = find(key);
  if (node == nullptr) return false;
  if (const auto number = node->value_exact<std::int64_t>(); number && *number >= 0) {
    out = static_cast<std::uint64_t>(*number);
    return true;
  }
  if (const auto text = node->value_exact<std::string>()) {
    if (const auto value = parse_byte_size(*text)) {
      out = *value;
      return true;
    }
  }
  wrong(key, *node, "a size: a whole number of bytes, or a string like \"512M\" or \"2G\"");
  return false;
}

bool ConfigTable::choice(std::string_view key, std::size_t& out,
                         std::span<const std::string_view> choices) {
  const toml::node* node = find(key);
  if (node == nullptr) return false;
  std::string list;
  for (const std::string_view c : choices) list += (list.empty() ? "" : ", ") + quoted(c);
  const auto text = node->value_exact<std::string>();
  if (text) {
    const auto it = std::find(choices.begin(), choices.end(), *text);
    if (it != choices.end()) {
      out = static_cast<std::size_t>(it - choices.begin());
      return true;
    }
  }
  std::string message = what_ + ": " + std::string(key) + " must be one of " + list + ", not " +
                        (text ? quoted(*text) : type_name(*node));
  if (text) {
    if (const auto near = closest_word(*text, choices))
      message += " (did you mean " + quoted(*near) + "?)";
  }
  problem_at(node->source(), std::move(message));
  return false;
}

bool ConfigTable::signal(std::string_view key, int& out) {
  const toml::node* node = find(key);
  if (node == nullptr) return false;
  std::optional<int> value;
  if (const auto text = node->value_exact<std::string>()) value = parse_stop_signal(*text);
  if (const auto number = node->value_exact<std::int64_t>();
      number && *number > 0 && *number < std::numeric_limits<int>::max()) {
    value = parse_stop_signal(std::to_string(*number));
  }
  if (!value) {
    wrong(key, *node, "a signal, by name (\"SIGTERM\", \"TERM\") or number");
    return false;
  }
  out = *value;
  return true;
}

void ConfigTable::finish() {
  for (const auto& [key, value] : table_) {
    if (std::find(known_.begin(), known_.end(), key.str()) != known_.end()) continue;
    std::string message = what_ + ": unknown key " + quoted(key.str());
    if (const auto near = closest_word(key.str(), known_)) {
      message += " (did you mean " + quoted(*near) + "?)";
    }
    problem_at(key.source(), std::move(message));
  }
}

}  // namespace procpool::tool
