#include "supervise/command_path.hpp"

#include <sys/stat.h>  // stat
#include <unistd.h>    // access

#include <cerrno>   // errno
#include <cstdlib>  // std::getenv
#include <string_view>

namespace procpool::tool {
namespace {

// 0 if `path` is a file we may execute, else why not.
int executable_error(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return errno;
  if (S_ISDIR(st.st_mode)) return EISDIR;
  if (::access(path.c_str(), X_OK) != 0) return errno;
  return 0;
}

}  // namespace

CommandPath find_command(const std::string& command) {
  if (command.find('/') != std::string::npos) {
    const int error = executable_error(command);
    return error == 0 ? CommandPath{command, 0} : CommandPath{{}, error};
  }
  const char* path_env = std::getenv("PATH");
  // execvp's default search path when PATH is unset.
  const std::string_view search = path_env != nullptr ? path_env : "/bin:/usr/bin";
  int error = ENOENT;
  std::size_t begin = 0;
  while (begin <= search.size()) {
    std::size_t end = search.find(':', begin);
    if (end == std::string_view::npos) end = search.size();
    std::string_view dir = search.substr(begin, end - begin);
    if (dir.empty()) dir = ".";  // an empty entry is the working directory
    std::string candidate;
    candidate.reserve(dir.size() + 1 + command.size());
    candidate.append(dir).append("/").append(command);
    const int candidate_error = executable_error(candidate);
    if (candidate_error == 0) return CommandPath{candidate, 0};
    // A file found but not executable is a better answer than "not found" (execvp's EACCES).
    if (candidate_error == EACCES) error = EACCES;
    begin = end + 1;
  }
  return CommandPath{{}, error};
}

}  // namespace procpool::tool
