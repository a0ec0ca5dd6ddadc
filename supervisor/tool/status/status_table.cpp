#include "status/status_table.hpp"

#include <cstdio>  // std::snprintf
#include <string>  // the table
#include <vector>  // rows

namespace procpool::tool {
namespace {

namespace json = boost::json;

std::string number(double value, const char* format) {
  char text[64];
  std::snprintf(text, sizeof text, format, value);
  return text;
}

std::string mib(const json::value& bytes) {
  return number(static_cast<double>(bytes.to_number<std::uint64_t>()) / (1024.0 * 1024.0),
                "%.1f MiB");
}

// Columns padded to their widest cell.
std::string table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> width;
  for (const auto& row : rows) {
    width.resize(std::max(width.size(), row.size()), 0);
    for (std::size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
  }
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (std::size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(width[i] - row[i].size() + 2, ' ');
    }
    out += line + "\n";
  }
  return out;
}

}  // namespace

std::string status_table(const json::object& reply) {
  std::vector<std::vector<std::string>> rows{
      {"NAME", "STATE", "PID", "UPTIME", "RESTARTS", "RSS", "CPU", "LAST EXIT"}};
  for (const json::value& entry : reply.at("programs").as_array()) {
    const json::object& p = entry.as_object();
    std::string state(p.at("state").as_string());
    if (const json::value* waiting = p.if_contains("waiting_for")) {
      std::string names;
      for (const json::value& name : waiting->as_array()) {
        if (!names.empty()) names.push_back(',');
        names.append(name.as_string());
      }
      state += " (for " + names + ")";
    }
    const auto pid = p.at("pid").to_number<std::int64_t>();
    rows.push_back(
        {std::string(p.at("name").as_string()), state, pid != 0 ? std::to_string(pid) : "-",
         number(p.at("uptime_s").to_number<double>(), "%.1f s"),
         std::to_string(p.at("restarts").to_number<std::uint64_t>()), mib(p.at("rss_bytes")),
         number(p.at("cpu_s").to_number<double>(), "%.2f s"),
         p.at("last_exit").is_null() ? "-" : std::string(p.at("last_exit").as_string())});
  }
  std::string out = rows.size() > 1 ? table(rows) : "";
  for (const json::value& entry : reply.at("pools").as_array()) {
    const json::object& pool = entry.as_object();
    const json::object& m = pool.at("metrics").as_object();
    auto count = [&](const char* key) {
      const json::value* v = m.if_contains(key);
      return v != nullptr ? std::to_string(v->to_number<std::uint64_t>()) : std::string("?");
    };
    const json::value* workers = m.if_contains("workers");
    out += "pool " + std::string(pool.at("name").as_string()) + ": " +
           (m.if_contains("state") ? std::string(m.at("state").as_string()) : "?") + ", " +
           std::to_string(workers != nullptr ? workers->as_array().size() : 0) + " workers, " +
           count("queued") + " queued, " + count("running") + " running, " + count("completed") +
           " completed, " + count("failed") + " failed\n";
  }
  return out;
}

}  // namespace procpool::tool
