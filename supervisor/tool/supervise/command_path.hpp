#pragma once

// Finding the program `procpool supervise` is asked to run before anything runs, so that a
// typo is one clear line and exit status 2 rather than a crash loop of failed starts.

#include <string>  // paths, messages

namespace procpool::tool {

struct CommandPath {
  std::string path;  // where CMD is (as given when it holds a '/'), if found and executable
  int error = 0;     // else the errno: ENOENT, EACCES, EISDIR ...
};

// CMD with a '/' is taken as a path; a bare name is looked up in $PATH, as execvp does.
CommandPath find_command(const std::string& command);

}  // namespace procpool::tool
