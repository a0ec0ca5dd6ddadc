#include "credentials.hpp"

#include <grp.h>     // getgrnam_r, getgrouplist
#include <pwd.h>     // getpwnam_r
#include <unistd.h>  // geteuid

#include <cerrno>   // ERANGE
#include <cstring>  // std::strerror
#include <string>

#include "procpool/supervisor.hpp"  // SupervisorError

namespace procpool::detail {
namespace {

SupervisorError bad(const ProgramSpec& spec, const std::string& why) {
  return SupervisorError(SupervisorError::Kind::BadSpec, "program \"" + spec.name + "\": " + why);
}

// A whole number: a uid or gid given as such.
std::optional<unsigned> number(const std::string& text) {
  if (text.empty() || text.size() > 9) return std::nullopt;
  unsigned value = 0;
  for (const char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  return value;
}

}  // namespace

std::optional<Credentials> resolve_credentials(const ProgramSpec& spec) {
  if (spec.user.empty() && spec.group.empty()) return std::nullopt;
  if (::geteuid() != 0) {
    throw bad(spec, std::string(spec.user.empty() ? "group" : "user") +
                        " needs the supervisor to run as root (it runs as uid " +
                        std::to_string(::geteuid()) + ")");
  }
  Credentials credentials;
  std::vector<char> buffer(16384);
  std::string user_name;
  if (!spec.user.empty()) {
    passwd entry{};
    passwd* found = nullptr;
    int error = 0;
    while ((error = ::getpwnam_r(spec.user.c_str(), &entry, buffer.data(), buffer.size(),
                                 &found)) == ERANGE) {
      buffer.resize(buffer.size() * 2);
    }
    const std::optional<unsigned> uid = number(spec.user);
    if (found == nullptr && uid) {  // a uid: its entry, if it has one
      while ((error = ::getpwuid_r(static_cast<uid_t>(*uid), &entry, buffer.data(), buffer.size(),
                                   &found)) == ERANGE) {
        buffer.resize(buffer.size() * 2);
      }
    }
    if (found != nullptr) {
      credentials.uid = found->pw_uid;
      credentials.gid = found->pw_gid;
      user_name = found->pw_name;
    } else if (uid) {
      credentials.uid = *uid;  // a uid with no entry: its group must be given, or is its uid
      credentials.gid = *uid;
    } else {
      throw bad(spec, error != 0 ? "cannot look up user '" + spec.user +
                                       "': " + std::string(std::strerror(error))
                                 : "no user named '" + spec.user + "'");
    }
  }
  if (!spec.group.empty()) {
    group entry{};
    group* found = nullptr;
    int error = 0;
    while ((error = ::getgrnam_r(spec.group.c_str(), &entry, buffer.data(), buffer.size(),
                                 &found)) == ERANGE) {
      buffer.resize(buffer.size() * 2);
    }
    if (found != nullptr) {
      credentials.gid = found->gr_gid;
    } else if (const auto gid = number(spec.group)) {
      credentials.gid = *gid;
    } else {
      throw bad(spec, "no group named '" + spec.group + "'");
    }
  }
  if (spec.user.empty()) credentials.uid = ::geteuid();  // root, with another group
  // The user's supplementary groups, as a login would have them (initgroups), with the primary.
  if (!user_name.empty()) {
    std::vector<gid_t> groups(64);
    int count = static_cast<int>(groups.size());
    while (::getgrouplist(user_name.c_str(), credentials.gid, groups.data(), &count) < 0) {
      groups.resize(static_cast<std::size_t>(count) + 64);
      count = static_cast<int>(groups.size());
    }
    credentials.groups.assign(groups.begin(), groups.begin() + count);
  } else {
    credentials.groups.push_back(credentials.gid);
  }
  return credentials;
}

}  // namespace procpool::detail
