#pragma once

// The "shm-spin" ring of docs/workloads.md, written the simple way: SPSC rings of 16-byte slots in
// one shared mapping, one release store of head and of tail per message, both sides busy-spinning
// with PAUSE, plus the fork/reap helpers around it. Used by raw_ring.cpp (the transport suite's
// IMPL=raw-ring) and by the raw-ring peer (tests/bench/peers/cxx/raw_ring_peer.cpp).

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

#include "bench_stats.hpp"  // now_ns, cpu_relax

namespace procpool::bench::raw_ring_spsc {

// A named constant rather than std::hardware_destructive_interference_size: the latter is
// ABI-unstable (g++ warns when it is used in a header) and 64 is right for every x86 we target.
constexpr std::size_t kCacheLineSize = 64;
constexpr std::uint64_t kSlots = 4096;  // power of two, so index & kMask replaces a modulo
constexpr std::uint64_t kMask = kSlots - 1;
constexpr std::uint64_t kStop = UINT64_MAX;       // ping-pong request that tells the child to exit
constexpr std::uint64_t kReady = UINT64_MAX - 1;  // first message the child sends
constexpr std::uint64_t kWaitTimeoutNs = 60ull * 1'000'000'000ull;
// Spin iterations between the (comparatively expensive) clock and liveness checks. At ~40-140
// cycles per PAUSE this is well under a millisecond, yet keeps the checks off the fast path.
constexpr std::uint32_t kSpinsPerCheck = 4096;

struct Slot {
  std::uint64_t a;
  std::uint64_t b;
};
static_assert(sizeof(Slot) == 16);

// Lives in shared memory, so the atomics must be address-free, i.e. lock-free.
static_assert(std::atomic<std::uint64_t>::is_always_lock_free);

struct alignas(kCacheLineSize) Ring {
  // head is written only by the producer and tail only by the consumer; separate cache lines
  // keep each side's stores from invalidating the line the other side is polling for no reason.
  alignas(kCacheLineSize) std::atomic<std::uint64_t> head{0};  // next slot to be written
  alignas(kCacheLineSize) std::atomic<std::uint64_t> tail{0};  // next slot to be read
  alignas(kCacheLineSize) Slot slots[kSlots];
};

struct SharedRegion {
  Ring request;   // parent -> child
  Ring response;  // child -> parent
};

[[noreturn]] inline void die_errno(const char* what) {
  std::fprintf(stderr, "procpool bench raw-ring: %s: %s\n", what, std::strerror(errno));
  std::abort();
}

// In the child: no stdio (its buffers are copies of the parent's) and no atexit handlers.
[[noreturn]] inline void child_fail(const char* msg) {
  const char prefix[] = "procpool bench raw-ring child: ";
  // Best effort: there is nothing useful left to do if writing the diagnostic fails.
  if (write(STDERR_FILENO, prefix, sizeof prefix - 1) < 0 ||
      write(STDERR_FILENO, msg, std::strlen(msg)) < 0 || write(STDERR_FILENO, "\n", 1) < 0) {
  }
  _exit(1);
}

inline void kill_and_reap(pid_t child) {
  if (kill(child, SIGKILL) != 0 && errno != ESRCH) die_errno("kill(child, SIGKILL)");
  int status = 0;
  while (waitpid(child, &status, 0) < 0) {
    if (errno != EINTR) die_errno("waitpid(child) after SIGKILL");
  }
}

// In the parent: never leave the child behind, then abort with the message.
[[noreturn]] inline __attribute__((format(printf, 2, 3))) void parent_fail(pid_t child,
                                                                           const char* fmt, ...) {
  if (child > 0) kill_and_reap(child);
  std::fprintf(stderr, "procpool bench raw-ring: ");
  va_list args;
  va_start(args, fmt);
  std::vfprintf(stderr, fmt, args);
  va_end(args);
  std::fprintf(stderr, "\n");
  std::abort();
}

// Who is on the other side of the rings, so that a spinning wait can notice that it is gone
// (or hung) instead of spinning forever.
struct Peer {
  pid_t pid;      // the child when we are the parent, the parent when we are the child
  bool is_child;  // true when `pid` is our child
  const char* what;
};

// Slow path of every spin-wait: bounds the wait to kWaitTimeoutNs and checks the peer is alive.
// The deadline is armed lazily on the first check so the fast path never reads the clock.
inline void check_peer(const Peer& peer, std::uint64_t& deadline_ns) {
  const std::uint64_t now = now_ns();
  if (deadline_ns == 0) {
    deadline_ns = now + kWaitTimeoutNs;
  } else if (now > deadline_ns) {
    if (!peer.is_child) child_fail("timed out waiting for the parent");
    parent_fail(peer.pid, "timed out (60 s) waiting for the %s", peer.what);
  }
  if (peer.is_child) {
    // WNOWAIT: only peek, so the normal reap path still sees the exit status.
    siginfo_t info;
    std::memset(&info, 0, sizeof info);
    if (waitid(P_PID, static_cast<id_t>(peer.pid), &info, WEXITED | WNOHANG | WNOWAIT) != 0) {
      if (errno != EINTR) die_errno("waitid(child, WNOHANG|WNOWAIT)");
    } else if (info.si_pid != 0) {
      parent_fail(peer.pid, "child exited unexpectedly (%s %d) while waiting for it",
                  info.si_code == CLD_EXITED ? "exit code" : "signal", info.si_status);
    }
  } else if (getppid() != peer.pid) {
    child_fail("parent went away");
  }
}

// Producer-side state lives in the producer's own memory: it owns head, and caches the last
// tail it saw so that it only touches the consumer's cache line when the ring looks full.
class Producer {
 public:
  explicit Producer(Ring* ring) : ring_(ring) {}

  void push(const Slot& s, const Peer& peer) {
    if (head_ - cached_tail_ == kSlots) {
      std::uint64_t deadline_ns = 0;
      std::uint32_t spins = 0;
      // Acquire pairs with the consumer's release store of tail: once we see the slot freed,
      // the consumer's read of it has happened, so overwriting it below cannot race that read.
      while (head_ - (cached_tail_ = ring_->tail.load(std::memory_order_acquire)) == kSlots) {
        cpu_relax();
        if (++spins % kSpinsPerCheck == 0) check_peer(peer, deadline_ns);
      }
    }
    ring_->slots[head_ & kMask] = s;
    ++head_;
    // The release store of head publishes the slot written before it; pairs with the
    // consumer's acquire load of head.
    ring_->head.store(head_, std::memory_order_release);
  }

 private:
  Ring* ring_;
  std::uint64_t head_ = 0;
  std::uint64_t cached_tail_ = 0;
};

// Consumer-side mirror image: owns tail, caches the last head it saw so that it only touches
// the producer's cache line when it has drained everything it already knows about.
class Consumer {
 public:
  explicit Consumer(Ring* ring) : ring_(ring) {}

  Slot pop(const Peer& peer) {
    if (tail_ == cached_head_) {
      std::uint64_t deadline_ns = 0;
      std::uint32_t spins = 0;
      // Acquire pairs with the producer's release store of head: seeing the new head makes
      // the slot contents written before that store visible to the read below.
      while ((cached_head_ = ring_->head.load(std::memory_order_acquire)) == tail_) {
        cpu_relax();
        if (++spins % kSpinsPerCheck == 0) check_peer(peer, deadline_ns);
      }
    }
    const Slot s = ring_->slots[tail_ & kMask];
    ++tail_;
    // The release store of tail orders our read of the slot before the slot is handed back;
    // pairs with the producer's acquire load of tail before it overwrites the slot.
    ring_->tail.store(tail_, std::memory_order_release);
    return s;
  }

 private:
  Ring* ring_;
  std::uint64_t tail_ = 0;
  std::uint64_t cached_head_ = 0;
};

// Creates the shared region. The name is unlinked as soon as the object exists: the open fd
// (and then the mapping, inherited across fork) keeps it alive, and nothing is left in /dev/shm
// even if we are killed mid-benchmark.
inline SharedRegion* map_shared_region() {
  int fd = -1;
  for (int attempt = 0; fd < 0; ++attempt) {
    std::uint64_t rnd = 0;
    if (getrandom(&rnd, sizeof rnd, 0) != static_cast<ssize_t>(sizeof rnd)) {
      die_errno("getrandom");
    }
    char name[64];
    std::snprintf(name, sizeof name, "/procpool-bench-%d-%016llx", static_cast<int>(getpid()),
                  static_cast<unsigned long long>(rnd));
    fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
    if (fd < 0) {
      if (errno == EEXIST && attempt < 8) continue;
      die_errno("shm_open");
    }
    if (shm_unlink(name) != 0) die_errno("shm_unlink");
  }
  if (ftruncate(fd, sizeof(SharedRegion)) != 0) die_errno("ftruncate(shm)");
  void* mem = mmap(nullptr, sizeof(SharedRegion), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (mem == MAP_FAILED) die_errno("mmap(shm)");
  if (close(fd) != 0) die_errno("close(shm fd)");
  // The kernel hands out zeroed pages already; constructing the object makes that explicit.
  return new (mem) SharedRegion();
}

inline void unmap_shared_region(SharedRegion* region) {
  region->~SharedRegion();
  if (munmap(region, sizeof(SharedRegion)) != 0) die_errno("munmap(shm)");
}

// Forks the child and runs `body` in it; the child never returns into the caller's code.
template <typename Body>
pid_t spawn_child(Body body) {
  const pid_t parent = getpid();
  // Anything still buffered would otherwise be in both processes; the child never flushes
  // (it uses _exit), but flushing here keeps ordering of the parent's output sane.
  std::fflush(stdout);
  std::fflush(stderr);
  const pid_t pid = fork();
  if (pid < 0) die_errno("fork");
  if (pid == 0) {
    // If the parent dies (abort, SIGKILL) the child must not keep spinning on a core.
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) child_fail("prctl(PR_SET_PDEATHSIG) failed");
    if (getppid() != parent) _exit(1);  // parent died before prctl took effect
    body(Peer{parent, false, "parent"});
    _exit(0);
  }
  return pid;
}

// Forks the request/response child: it announces itself (kReady on the response ring), then
// answers each request with respond(request) until a kStop request.
template <typename Respond>
pid_t spawn_server(SharedRegion* region, Respond respond) {
  return spawn_child([region, respond](const Peer& parent) {
    Consumer requests(&region->request);
    Producer responses(&region->response);
    responses.push(Slot{kReady, 0}, parent);
    for (;;) {
      const Slot req = requests.pop(parent);
      if (req.a == kStop) break;
      responses.push(respond(req), parent);
    }
  });
}

// Bounded reap: poll for up to kWaitTimeoutNs, then kill the child and abort.
inline void reap_child(pid_t child) {
  const std::uint64_t deadline = now_ns() + kWaitTimeoutNs;
  for (;;) {
    int status = 0;
    const pid_t r = waitpid(child, &status, WNOHANG);
    if (r == child) {
      if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return;
      parent_fail(-1, "child failed: exited=%llu code=%llu signal=%llu",
                  WIFEXITED(status) ? 1ull : 0ull,
                  WIFEXITED(status) ? static_cast<unsigned long long>(WEXITSTATUS(status)) : 0,
                  WIFSIGNALED(status) ? static_cast<unsigned long long>(WTERMSIG(status)) : 0);
    }
    if (r < 0 && errno != EINTR) die_errno("waitpid(child)");
    if (now_ns() > deadline) parent_fail(child, "timed out (60 s) waiting for the child to exit");
    const timespec ms{0, 1'000'000};
    nanosleep(&ms, nullptr);  // EINTR just means an earlier re-check, which is fine
  }
}

}  // namespace procpool::bench::raw_ring_spsc
