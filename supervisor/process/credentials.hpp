#pragma once

// Who a program runs as (ProgramSpec::user, group): resolved once, when the program is added or
// updated, so a launch does no lookup (and no NSS module runs between vfork and exec).

#include <optional>  // none: the supervisor's own
#include <vector>    // supplementary groups

#include "procpool/program_spec.hpp"

namespace procpool::detail {

struct Credentials {
  unsigned uid = 0;
  unsigned gid = 0;
  std::vector<unsigned> groups;  // supplementary: the user's (getgrouplist), with gid
};

// Nothing when neither user nor group is set. Throws SupervisorError(BadSpec): an unknown user
// or group, or either set while the supervisor is not root.
std::optional<Credentials> resolve_credentials(const ProgramSpec& spec);

}  // namespace procpool::detail
