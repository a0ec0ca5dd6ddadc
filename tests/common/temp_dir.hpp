#pragma once

// A private temporary directory for one test (mkdtemp, so 0700 and unique), removed with what
// is in it when the test ends.

#include <cstdlib>     // mkdtemp
#include <filesystem>  // temp_directory_path, remove_all
#include <stdexcept>   // std::runtime_error
#include <string>      // the pattern

namespace procpool::test {

class TempDir {
 public:
  // `prefix` names the test's area in TMPDIR ("procpool-output" -> procpool-output-XXXXXX).
  explicit TempDir(const std::string& prefix) {
    std::string pattern = (std::filesystem::temp_directory_path() / (prefix + "-XXXXXX"));
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace procpool::test
