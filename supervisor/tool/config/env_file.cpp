#include "config/env_file.hpp"

#include <cerrno>      // errno
#include <cstring>     // std::strerror
#include <filesystem>  // a directory is no file
#include <fstream>     // the file

namespace procpool::tool {
namespace {

bool variable_name(const std::string& name) {
  if (name.empty() || (name[0] >= '0' && name[0] <= '9')) return false;
  for (const char c : name) {
    if (!(c == '_' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')))
      return false;
  }
  return true;
}

std::string trimmed(const std::string& text) {
  const std::size_t first = text.find_first_not_of(" \t\r");
  if (first == std::string::npos) return "";
  return text.substr(first, text.find_last_not_of(" \t\r") - first + 1);
}

}  // namespace

EnvFileRead read_env_file(const std::string& path) {
  EnvFileRead read;
  std::error_code ignored;
  if (std::filesystem::is_directory(path, ignored)) {
    read.error = "cannot read it: Is a directory";
    return read;
  }
  std::ifstream in(path);
  if (!in) {
    read.error = std::string("cannot read it: ") + std::strerror(errno);
    return read;
  }
  std::string line;
  for (unsigned number = 1; std::getline(in, line); ++number) {
    line = trimmed(line);
    if (line.empty() || line[0] == '#' || line[0] == ';') continue;
    if (line.rfind("export ", 0) == 0) line = trimmed(line.substr(7));
    const std::size_t equals = line.find('=');
    const std::string name = equals == std::string::npos ? line : trimmed(line.substr(0, equals));
    if (equals == std::string::npos || !variable_name(name)) {
      read.error = "line " + std::to_string(number) + ": not KEY=VALUE";
      read.variables.clear();
      return read;
    }
    std::string value = trimmed(line.substr(equals + 1));
    if (value.size() >= 2 && (value[0] == '"' || value[0] == '\'') && value.back() == value[0]) {
      value = value.substr(1, value.size() - 2);
    }
    read.variables.emplace_back(name, std::move(value));
  }
  if (in.bad()) read.error = std::string("cannot read it: ") + std::strerror(errno);
  return read;
}

}  // namespace procpool::tool
