#pragma once

// Health checks' view of an instance: resident memory and CPU time of its whole process group
// (the instance and every descendant that stayed in its group), summed from /proc/<pid>/stat.
// A descendant that moved to its own group or session is not counted; this is the same
// boundary the stop signal reaches.

#include "process_status.hpp"

namespace procpool::detail {

ProcessUsage read_group_usage(int pgid);

// The same for a process and its descendants, found through /proc/PID/task/TID/children
// (whatever group they are in; at most 4096 processes): a few reads for a process with no
// children, where read_group_usage reads every /proc/PID/stat. The pool's memory limits use it
// after tasks, where a scan of /proc would cost too much.
ProcessUsage read_tree_usage(int pid);

// A live (not zombie) process other than `except` is still in the group (for the cleanup
// after an exit).
bool group_has_members_besides(int pgid, int except);

}  // namespace procpool::detail
