#pragma once

// The supervisor's NOTIFY_SOCKET: the sd_notify datagram protocol, served to its own children
// (docs/supervisor.md, "Readiness"). One AF_UNIX SOCK_DGRAM socket per supervisor, in a private
// directory made with mkdtemp (0700), the socket itself 0600, both removed by the destructor.
// A supervisor that was SIGKILLed cannot remove them, so every new NotifySocket first removes
// the ones of this user that nobody uses any more (remove_stale_notify_dirs). "Nobody uses it"
// is not told by the pid in the name ("procpool-notify-<pid>-XXXXXX"): a TMPDIR shared with
// another pid namespace holds directories of live supervisors whose pids mean nothing here.
// Instead each NotifySocket holds flock(LOCK_EX) on a lock file in its directory for its whole
// life; the kernel drops it when the process dies, whatever its namespace. The lock is taken
// before the socket is bound, so a directory with the socket in it and a lock that can be taken
// is abandoned.
// SO_PASSCRED makes the kernel attach the sender's real pid to every datagram, so the caller
// can accept a message only from an instance's main pid (systemd's NotifyAccess=main): a
// grandchild, or any other process of the same user, cannot make an instance ready.
//
// Everything received is untrusted: datagrams above kMaxDatagram are dropped whole, fds passed
// along (SCM_RIGHTS) are closed at once, unknown keys are ignored.

#include <cstddef>      // std::size_t
#include <functional>   // std::function
#include <optional>     // std::optional
#include <string>       // std::string
#include <string_view>  // std::string_view

#include "procpool/unique_fd.hpp"

namespace procpool::detail {

struct NotifyMessage {
  bool ready = false;                 // READY=1
  bool watchdog = false;              // WATCHDOG=1
  bool stopping = false;              // STOPPING=1
  std::optional<std::string> status;  // STATUS=...
};

// "KEY=VALUE" lines, '\n'-separated (sd_notify(3)). A repeated key: the last one wins.
NotifyMessage parse_notify(std::string_view datagram);

// Removes, under `parent`, the notify directories of this user that hold the socket file and a
// lock file nobody holds (flock LOCK_EX|LOCK_NB succeeds), with those two files in them; a
// directory holding anything else is left alone, and so is one without a lock file (being set
// up, or left by a version that had none).
void remove_stale_notify_dirs(const std::string& parent) noexcept;

class NotifySocket {
 public:
  static constexpr std::size_t kMaxDatagram = 4096;
  static constexpr std::size_t kMaxStatus = 256;  // STATUS= text kept, bytes

  NotifySocket();  // throws SystemError
  ~NotifySocket();
  NotifySocket(const NotifySocket&) = delete;
  NotifySocket& operator=(const NotifySocket&) = delete;

  int fd() const noexcept { return socket_.get(); }
  const std::string& path() const noexcept { return path_; }

  // Reads the datagrams waiting (at most a bounded batch, so one flooding child cannot hold the
  // loop) and hands each with its sender's pid to `on_message`. Nonblocking.
  void receive(const std::function<void(int pid, const NotifyMessage&)>& on_message);

 private:
  void remove_directory() noexcept;

  std::string dir_;
  std::string path_;
  UniqueFd lock_;  // holds flock(LOCK_EX) on dir_/lock while we live
  UniqueFd socket_;
};

}  // namespace procpool::detail
