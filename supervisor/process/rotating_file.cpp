#include "rotating_file.hpp"

#include <fcntl.h>     // open
#include <sys/stat.h>  // fstat
#include <unistd.h>    // write, unlink

#include <algorithm>  // std::min
#include <cerrno>     // errno
#include <cstdio>     // rename, remove
#include <utility>    // std::move

#include "procpool/error.hpp"

namespace procpool::detail {

RotatingFile::RotatingFile(std::string path, std::uint64_t max_bytes, unsigned keep,
                           std::chrono::milliseconds retry_after)
    : path_(std::move(path)), max_bytes_(max_bytes), keep_(keep), retry_after_(retry_after) {
  if (!open()) {
    const int error = errno;  // before building the message, which may clobber it
    throw_errno(error, "cannot open log file " + path_);
  }
}

bool RotatingFile::open() noexcept {
  const int fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY, 0600);
  if (fd < 0) return false;
  fd_.reset(fd);
  struct stat st {};
  size_ = ::fstat(fd_.get(), &st) == 0 ? static_cast<std::uint64_t>(st.st_size) : 0;
  return true;
}

// False when the full file could not be moved away (fd_ is still that file) or no new file could
// be opened (fd_ is closed).
bool RotatingFile::rotate() noexcept {
  if (keep_ == 0) {
    if (::unlink(path_.c_str()) != 0 && errno != ENOENT) return false;
  } else {
    // The older ones may be missing, and need not move for the new file to be had.
    std::remove((path_ + "." + std::to_string(keep_)).c_str());
    for (unsigned i = keep_; i > 1; --i) {
      std::rename((path_ + "." + std::to_string(i - 1)).c_str(),
                  (path_ + "." + std::to_string(i)).c_str());
    }
    // ENOENT: the file is gone already (its directory removed); a new one is still worth a try.
    if (std::rename(path_.c_str(), (path_ + ".1").c_str()) != 0 && errno != ENOENT) return false;
  }
  fd_.reset();
  return open();
}

// A file with room for the next byte: a rotation when the current one is full, an open when
// there is none (a rotation failed to open the new file), at most once per retry_after_ after a
// failure.
bool RotatingFile::make_room() noexcept {
  if (failing_ && std::chrono::steady_clock::now() < retry_at_) return false;
  const bool ok = (fd_ ? rotate() : open()) && (max_bytes_ == 0 || size_ < max_bytes_);
  failing_ = !ok;
  if (!ok) retry_at_ = std::chrono::steady_clock::now() + retry_after_;
  return ok;
}

void RotatingFile::write(std::string_view bytes) noexcept {
  while (!bytes.empty()) {
    if ((!fd_ || (max_bytes_ != 0 && size_ >= max_bytes_)) && !make_room()) {
      dropped_ += bytes.size();
      return;
    }
    // Filled up to max_bytes exactly, so every rotated file has the same size.
    std::size_t part = bytes.size();
    if (max_bytes_ != 0) part = std::min<std::uint64_t>(part, max_bytes_ - size_);
    const ssize_t n = ::write(fd_.get(), bytes.data(), part);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {  // ENOSPC, EIO, EDQUOT, EFBIG: the next write tries again
      dropped_ += bytes.size();
      return;
    }
    size_ += static_cast<std::uint64_t>(n);
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
}

}  // namespace procpool::detail
