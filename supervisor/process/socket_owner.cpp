#include "socket_owner.hpp"

#include <arpa/inet.h>   // htonl
#include <dirent.h>      // opendir, readdir
#include <netinet/in.h>  // INADDR_LOOPBACK
#include <unistd.h>      // getpgid, readlink

#include <algorithm>  // std::find
#include <cstdint>    // std::uint32_t
#include <cstdio>     // std::fopen, std::sscanf
#include <cstdlib>    // std::strtol, std::strtoul
#include <cstring>    // std::strncmp
#include <string>     // std::string

namespace procpool::detail {
namespace {

constexpr unsigned kTcpListen = 0x0A;  // include/net/tcp_states.h: TCP_LISTEN

// The kernel prints each 32-bit word of an address as the hex of its value in memory (network
// order read as a host integer), so comparing with htonl() of the word works on any host.
bool reachable_v4(std::uint32_t word) { return word == 0 || word == htonl(INADDR_LOOPBACK); }

bool reachable_v6(const std::uint32_t (&words)[4]) {
  if (words[0] != 0 || words[1] != 0) return false;
  if (words[2] == 0) return words[3] == 0;                     // ::
  return words[2] == htonl(0xFFFF) && reachable_v4(words[3]);  // ::ffff:a.b.c.d
}

std::uint32_t hex_word(const char* text) {
  char word[9] = {};
  std::memcpy(word, text, 8);
  return static_cast<std::uint32_t>(std::strtoul(word, nullptr, 16));
}

// One table, /proc/net/tcp or /proc/net/tcp6. Line format (net/ipv4/tcp_ipv4.c,
// get_tcp4_sock): "sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid
// timeout inode ...", addresses as HEX:PORT.
void read_table(const char* path, bool v6, unsigned short port, std::vector<unsigned long>& out) {
  FILE* file = std::fopen(path, "re");
  if (file == nullptr) return;
  char line[512];
  if (std::fgets(line, sizeof line, file) == nullptr) {  // the header
    std::fclose(file);
    return;
  }
  while (std::fgets(line, sizeof line, file) != nullptr) {
    char address[33] = {};
    unsigned local_port = 0, state = 0;
    unsigned long inode = 0;
    if (std::sscanf(line,
                    " %*d: %32[0-9A-Fa-f]:%x %*[0-9A-Fa-f]:%*x %x %*x:%*x %*x:%*x %*x %*u %*u %lu",
                    address, &local_port, &state, &inode) != 4) {
      continue;
    }
    if (state != kTcpListen || local_port != port || inode == 0) continue;
    bool reachable = false;
    if (!v6 && std::strlen(address) == 8) {
      reachable = reachable_v4(hex_word(address));
    } else if (v6 && std::strlen(address) == 32) {
      const std::uint32_t words[4] = {hex_word(address), hex_word(address + 8),
                                      hex_word(address + 16), hex_word(address + 24)};
      reachable = reachable_v6(words);
    }
    if (reachable) out.push_back(inode);
  }
  std::fclose(file);
}

bool holds_socket(const std::string& pid, const std::vector<unsigned long>& inodes) {
  const std::string dir_path = "/proc/" + pid + "/fd";
  DIR* dir = ::opendir(dir_path.c_str());
  if (dir == nullptr) return false;
  bool found = false;
  while (const dirent* entry = ::readdir(dir)) {
    if (entry->d_name[0] == '.') continue;
    char target[64];
    const std::string link = dir_path + "/" + entry->d_name;
    const ssize_t n = ::readlink(link.c_str(), target, sizeof target - 1);
    if (n <= 0) continue;
    target[n] = '\0';
    constexpr char kPrefix[] = "socket:[";
    if (std::strncmp(target, kPrefix, sizeof kPrefix - 1) != 0) continue;
    const unsigned long inode = std::strtoul(target + sizeof kPrefix - 1, nullptr, 10);
    if (std::find(inodes.begin(), inodes.end(), inode) != inodes.end()) {
      found = true;
      break;
    }
  }
  ::closedir(dir);
  return found;
}

}  // namespace

std::vector<unsigned long> loopback_listeners(unsigned short port) {
  std::vector<unsigned long> inodes;
  read_table("/proc/net/tcp", false, port, inodes);
  read_table("/proc/net/tcp6", true, port, inodes);
  return inodes;
}

bool group_holds_socket(int pgid, const std::vector<unsigned long>& socket_inodes) {
  if (socket_inodes.empty() || pgid <= 0) return false;
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) return false;
  bool found = false;
  while (const dirent* entry = ::readdir(proc)) {
    if (entry->d_name[0] < '0' || entry->d_name[0] > '9') continue;
    // getpgid() is one syscall per process, no /proc/PID/stat to read and parse.
    const auto pid = static_cast<pid_t>(std::strtol(entry->d_name, nullptr, 10));
    if (::getpgid(pid) != pgid) continue;
    if (holds_socket(entry->d_name, socket_inodes)) {
      found = true;
      break;
    }
  }
  ::closedir(proc);
  return found;
}

}  // namespace procpool::detail
