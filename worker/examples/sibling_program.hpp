#pragma once

// For the example hosts: the path of a program installed next to the running one (the example
// workers are built into the same directory as their hosts).

#include <unistd.h>  // readlink

#include <string>  // paths

namespace procpool::examples {

inline std::string sibling_program(const char* name) {
  char self[4096];
  const ssize_t size = ::readlink("/proc/self/exe", self, sizeof self - 1);
  if (size <= 0) return name;
  std::string path(self, static_cast<std::size_t>(size));
  return path.substr(0, path.rfind('/') + 1) + name;
}

}  // namespace procpool::examples
