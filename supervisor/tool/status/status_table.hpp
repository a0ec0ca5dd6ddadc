#pragma once

// The daemon's status reply (docs/control.md) as `procpool status` and `procpool top` print it:
// a table of program instances (name, state, pid, uptime, restarts, RSS, CPU, last exit), then
// a line per pool. Throws std::exception for a reply with a field missing or of another type.

#include <string>

#include <boost/json/object.hpp>

namespace procpool::tool {

std::string status_table(const boost::json::object& reply);

}  // namespace procpool::tool
