#include "pool_core.hpp"

#include <signal.h>  // SIGKILL

#include <string>  // messages

#include "group_usage.hpp"  // read_tree_usage
#include "process_status.hpp"
#include "report_text.hpp"

namespace procpool::detail {
using State = WorkerSlot::State;

void PoolCore::kill_locked(WorkerSlot& slot, std::string reason, ProtocolViolation violation) {
  if (slot.process.has_process() && !slot.process.killed) slot.process.violation = violation;
  kill_locked(slot, std::move(reason), KillCause::kProtocolViolation);
}

void PoolCore::kill_locked(WorkerSlot& slot, std::string reason, KillCause cause) {
  slot.process.kill(std::move(reason), cause);
}

// A worker's doorbell rang. More rings than its ring traffic explains are a wake-up flood
// (WorkerChannel::check_doorbell, docs/design-rules.md §18), and the worker is killed for it;
// its ring is drained first, so what it published counts.
void PoolCore::doorbell_locked(WorkerSlot& slot) {
  if (!slot.channel || !slot.channel->take_rings()) return;
  if (!slot.live() || slot.process.killed) return;
  // A held ring is not read, so its traffic does not grow: no flood check against it then.
  if (ring_held(slot)) return;
  drain_slot_locked(slot);
  if (slot.process.killed || !slot.channel) return;
  WorkerChannel& channel = *slot.channel;
  const ChannelFault fault = channel.check_doorbell();
  if (fault.violation == ProtocolViolation::DoorbellFlood) {
    kill_locked(slot,
                "protocol violation: doorbell flood (" + std::to_string(channel.rings()) +
                    " rings for " + std::to_string(channel.traffic()) + " bytes of ring traffic)",
                fault.violation);
  } else if (fault.violation != ProtocolViolation::None) {
    kill_locked(slot, "protocol violation: " + std::string(fault.detail), fault.violation);
  }
}

// Memory limits (PoolOptions::max_rss, max_rss_hard), from the worker's resident set size.
void PoolCore::check_memory_locked(WorkerSlot& slot) {
  // The worker and what it forked: a child holding the memory counts as the worker's.
  const std::uint64_t rss = read_tree_usage(slot.pid()).rss_bytes;
  if (rss == 0) return;  // exiting, or /proc unreadable
  if (options_.max_rss_hard != 0 && rss > options_.max_rss_hard) {
    slot.process.memory_exceeded = true;
    kill_locked(slot,
                "resident memory " + mebibytes_text(rss) + " above max_rss_hard " +
                    mebibytes_text(options_.max_rss_hard),
                KillCause::kForTask);
    return;
  }
  if (options_.max_rss != 0 && rss > options_.max_rss) recycle_locked(slot, Recycle::kAboveMaxRss);
}

}  // namespace procpool::detail
