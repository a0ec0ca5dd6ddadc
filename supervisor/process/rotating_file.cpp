#include "rotating_file.hpp"

#include <fcntl.h>     // open
#include <sys/stat.h>  // fstat
#include <unistd.h>    // write

#include <algorithm>  // std::min
#include <cerrno>     // errno
#include <cstdio>     // std::rename, std::remove
#include <utility>    // std::move

#include "procpool/error.hpp"

namespace procpool::detail {

RotatingFile::RotatingFile(std::string path, std::uint64_t max_bytes, unsigned keep)
    : path_(std::move(path)), max_bytes_(max_bytes), keep_(keep) {
  open();
  if (!fd_) throw_errno(errno, "cannot open log file " + path_);
}

void RotatingFile::open() noexcept {
  fd_.reset(::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY, 0600));
  struct stat st {};
  size_ = fd_ && ::fstat(fd_.get(), &st) == 0 ? static_cast<std::uint64_t>(st.st_size) : 0;
}

void RotatingFile::rotate() noexcept {
  fd_.reset();
  if (keep_ == 0) {
    std::remove(path_.c_str());
  } else {
    std::remove((path_ + "." + std::to_string(keep_)).c_str());
    for (unsigned i = keep_; i > 1; --i) {
      std::rename((path_ + "." + std::to_string(i - 1)).c_str(),
                  (path_ + "." + std::to_string(i)).c_str());
    }
    std::rename(path_.c_str(), (path_ + ".1").c_str());
  }
  open();
}

void RotatingFile::write(std::string_view bytes) noexcept {
  while (!bytes.empty()) {
    if (max_bytes_ != 0 && size_ >= max_bytes_) rotate();
    if (!fd_) return;
    // Filled up to max_bytes exactly, so every rotated file has the same size.
    std::size_t part = bytes.size();
    if (max_bytes_ != 0) part = std::min<std::uint64_t>(part, max_bytes_ - size_);
    const ssize_t n = ::write(fd_.get(), bytes.data(), part);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    size_ += static_cast<std::uint64_t>(n);
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
}

}  // namespace procpool::detail
