#include "pool_core.hpp"

#include <poll.h>         // poll (forwarding stderr)
#include <signal.h>       // SIGKILL
#include <sys/syscall.h>  // SYS_pidfd_send_signal
#include <unistd.h>       // read, syscall

#include <string>  // messages

#include "callback_scope.hpp"
#include "process_status.hpp"
#include "report_text.hpp"

namespace procpool::detail {
using State = WorkerSlot::State;

void PoolCore::kill_locked(WorkerSlot& slot, std::string reason, ProtocolViolation violation) {
  if (slot.pidfd && !slot.killed) slot.violation = violation;
  kill_locked(slot, std::move(reason), KillCause::kProtocolViolation);
}

void PoolCore::kill_locked(WorkerSlot& slot, std::string reason, KillCause cause) {
  if (!slot.pidfd) return;
  if (!slot.killed) {
    slot.killed = true;
    slot.kill_reason = std::move(reason);
    slot.kill_cause = cause;
  }
  // Through the pidfd (the pid cannot have been reused: we have not reaped it), then the
  // process group, for any children of the worker (PDEATHSIG does not reach them).
  ::syscall(SYS_pidfd_send_signal, slot.pidfd.get(), SIGKILL, nullptr, 0);
  ::kill(-slot.pid, SIGKILL);
  if (slot.state() == State::kReady) slot.set_state(State::kDraining);  // no new tasks meanwhile
}

// Reads at most `budget` bytes of what the worker wrote to stderr (the pipe is level-triggered
// in epoll: the rest wakes the supervisor thread again), so a worker flooding its stderr cannot
// keep this thread, and the pool's mutex, to itself. Forwarding is best effort: bytes are
// dropped, not waited for, when our own stderr is a pipe nobody drains (a blocked write here
// would stop the whole pool); the crash report's tail keeps them either way.
void PoolCore::read_stderr_locked(WorkerSlot& slot, std::size_t budget) {
  if (!slot.stderr_fd) return;
  char buffer[4096];  // PIPE_BUF: a write of this size to a pipe with POLLOUT never blocks
  for (std::size_t taken = 0; taken < budget;) {
    const ssize_t n = ::read(slot.stderr_fd.get(), buffer, sizeof buffer);
    if (n <= 0) break;
    taken += static_cast<std::size_t>(n);
    const std::string_view bytes(buffer, static_cast<std::size_t>(n));
    slot.stderr_tail.append(bytes);
    if (options_.forward_stderr) {
      pollfd out{STDERR_FILENO, POLLOUT, 0};
      if (::poll(&out, 1, 0) == 1 && (out.revents & POLLOUT) != 0) {
        // A pipe whose reader is gone: EPIPE, never SIGPIPE in the host.
        write_stderr_quietly(buffer, static_cast<std::size_t>(n));
      }
    }
  }
}

// A worker's doorbell rang. More rings than its ring traffic explains are a wake-up flood
// (WorkerChannel::check_doorbell, docs/design-rules.md §18), and the worker is killed for it;
// its ring is drained first, so what it published counts.
void PoolCore::doorbell_locked(WorkerSlot& slot) {
  if (!slot.channel || !slot.channel->take_rings()) return;
  if (!slot.live() || slot.killed) return;
  drain_slot_locked(slot);
  if (slot.killed || !slot.channel) return;
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
  const std::uint64_t rss = read_process_usage(slot.pid).rss_bytes;
  if (rss == 0) return;  // exiting, or /proc unreadable
  if (options_.max_rss_hard != 0 && rss > options_.max_rss_hard) {
    slot.memory_exceeded = true;
    kill_locked(slot,
                "resident memory " + mebibytes_text(rss) + " above max_rss_hard " +
                    mebibytes_text(options_.max_rss_hard),
                KillCause::kForTask);
    return;
  }
  if (options_.max_rss != 0 && rss > options_.max_rss && slot.state() == State::kReady) {
    slot.set_state(State::kDraining);  // recycled once the tasks on board are answered
    kick();
  }
}

}  // namespace procpool::detail
