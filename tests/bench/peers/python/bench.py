#!/usr/bin/env python3
"""Python peers for procpool's benchmarks: ONE ROUND of the docs/workloads.md workloads.

Implementations (standard library only):
  py-processpool  concurrent.futures.ProcessPoolExecutor
  py-mppool       multiprocessing.Pool
  py-inproc       the B1 checksum alone in the supervisor (context figure)

Both pools use the 'fork' start method (S1 also measures 'spawn'). Every figure is printed on
stdout as one line, `WORKLOAD IMPL FIGURE VALUE UNIT`; scripts/bench.sh peers calls this once per
round, interleaving implementations, and takes the medians. Every result is checked: a wrong
answer, a failed task or a watchdog expiry prints a message on stderr and exits non-zero (figures
already printed stay printed). See README.md.

usage: python3 bench.py [--workload L1,T1,B1,C1,S1,I1] [--impl py-processpool,py-mppool,py-inproc]
                        [--quick] [--verbose] [--timeout SECONDS]
"""

import argparse
import collections
import concurrent.futures
import math
import multiprocessing
import os
import signal
import struct
import sys
import threading
import time

# ---- sizes (docs/workloads.md) ----
L1_WARMUP = 1_000
L1_MEASURED = 20_000
L1_BASE = 1_000_000
T1_TASKS = 200_000
T1_WARMUP = 2_000  # untimed, on every T1 pool before its timed section
T1_CHUNKSIZES = (1, 10_000)
MIB = 1_048_576
B1_TASKS = 2_000
B1_WINDOW = 4
B1_INPROC_REPS = 50
C1_TASKS = 512
FIB30 = 832_040
S1_REPS = {"fork": 15, "spawn": 5}
S1_WARMUP = 1
MASK64 = (1 << 64) - 1

WORKLOADS = ("L1", "T1", "B1", "C1", "S1", "I1")
# docs/workloads.md workloads that these peers do not run. R1: ProcessPoolExecutor breaks for good at
# the first killed worker (BrokenProcessPool), and multiprocessing.Pool starts a replacement that
# never gets a task (the killed worker held the task queue's read lock). See README.md.
NOT_HERE = ("R1", "M1", "X1")
IMPLS = ("py-processpool", "py-mppool", "py-inproc")


# ---- the tasks (module level, so the pools can pickle them by name) ----


def inc(x):
    return x + 1


def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def fib30(_=None):
    return fib(30)


def checksum(buf):
    """Sum of the native (little-endian here: checked at start) unsigned 64-bit words, mod 2^64."""
    return sum(memoryview(buf).cast("Q")) & MASK64


# ---- output and failure ----


class WrongResult(Exception):
    pass


def wrong(what):
    raise WrongResult(f"wrong result: {what}")


def format_value(v):
    """Three significant digits, like the C++ peers (tests/bench/bench_stats.hpp format_value)."""
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if v == 0:
        return "0"
    mag = abs(v)
    exp10 = math.floor(math.log10(mag))
    scale = 10.0 ** (exp10 - 2)
    rounded = round(mag / scale) * scale
    if rounded >= 10.0 ** (exp10 + 1):
        exp10 += 1
    if exp10 >= 2:
        return f"{math.copysign(rounded, v):.0f}"
    out = f"{v:.{2 - exp10}f}".rstrip("0").rstrip(".")
    return "0" if out == "-0" else out


def emit(workload, impl, figure, value, unit):
    sys.stdout.write(f"{workload} {impl} {figure} {format_value(value)} {unit}\n")
    sys.stdout.flush()


VERBOSE = False


def note(msg):
    if VERBOSE:
        sys.stderr.write(f"bench.py: {msg}\n")


def percentile(samples, q):
    """Nearest rank: sort ascending, take sample number ceil(q * n) (1-based)."""
    ordered = sorted(samples)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


now_ns = time.perf_counter_ns


# ---- the two pools behind one small interface ----


class ProcessPoolPeer:
    """concurrent.futures.ProcessPoolExecutor; `submit` returns a Future."""

    name = "py-processpool"

    def __init__(self, workers, context):
        self.executor = concurrent.futures.ProcessPoolExecutor(max_workers=workers, mp_context=context)

    def call(self, fn, arg):
        return self.executor.submit(fn, arg).result()

    def submit(self, fn, arg):
        return self.executor.submit(fn, arg)

    @staticmethod
    def result(pending):
        return pending.result()

    def map(self, fn, args, chunksize):
        return list(self.executor.map(fn, args, chunksize=chunksize))

    def close(self):
        self.executor.shutdown(wait=True)


class MpPoolPeer:
    """multiprocessing.Pool; `submit` returns an AsyncResult."""

    name = "py-mppool"

    def __init__(self, workers, context):
        self.pool = context.Pool(workers)

    def call(self, fn, arg):
        return self.pool.apply(fn, (arg,))

    def submit(self, fn, arg):
        return self.pool.apply_async(fn, (arg,))

    @staticmethod
    def result(pending):
        return pending.get()

    def map(self, fn, args, chunksize):
        return self.pool.map(fn, args, chunksize=chunksize)

    def close(self):
        self.pool.close()
        self.pool.join()


PEERS = {"py-processpool": ProcessPoolPeer, "py-mppool": MpPoolPeer}
FORK = multiprocessing.get_context("fork")


def make_peer(impl, workers, context=FORK):
    return PEERS[impl](workers, context)


def warm_up(peer, workers):
    """Starts every worker and runs tasks on them before a timed section."""
    n = 200 * workers
    if peer.map(inc, range(n), 1) != list(range(1, n + 1)):
        wrong(f"{peer.name} warm-up")


# ---- L1: latency, one worker, one task in flight ----


def l1(impl):
    peer = make_peer(impl, 1)
    for i in range(L1_WARMUP):
        r = peer.call(inc, i)
        if r != i + 1:
            wrong(f"L1 {impl} warm-up: inc({i}) returned {r}")
    samples = [0] * L1_MEASURED
    for i in range(L1_MEASURED):
        x = L1_BASE + i
        t0 = now_ns()
        r = peer.call(inc, x)
        samples[i] = now_ns() - t0
        if r != x + 1:
            wrong(f"L1 {impl}: inc({x}) returned {r}")
    peer.close()
    emit("L1", impl, "p50", percentile(samples, 0.50) / 1e3, "us")
    emit("L1", impl, "p99", percentile(samples, 0.99) / 1e3, "us")


# ---- T1: throughput, two workers, map(inc, range(200000), chunksize=N) ----


def t1(impl):
    expected = list(range(1, T1_TASKS + 1))
    for chunksize in T1_CHUNKSIZES:
        peer = make_peer(impl, 2)
        warm_up(peer, 2)
        t0 = now_ns()
        results = peer.map(inc, range(T1_TASKS), chunksize)
        seconds = (now_ns() - t0) / 1e9
        peer.close()
        if results != expected:
            wrong(f"T1 {impl} chunksize {chunksize}: results differ from 1..{T1_TASKS}")
        emit("T1", impl, f"tput_2w_chunk{chunksize}", T1_TASKS / seconds, "tasks/s")


# ---- B1: 1 MiB buffers, one worker, at most 4 in flight ----


def source_buffer(b):
    # byte j = (7*j + b) mod 256 repeats every 256 bytes.
    return bytes((7 * j + b) & 255 for j in range(256)) * (MIB // 256)


def reference_checksum(buf):
    """The plain way, explicitly little-endian, independent of checksum()."""
    return sum(struct.unpack(f"<{len(buf) // 8}Q", buf)) & MASK64


_b1_inputs = None


def b1_inputs():
    global _b1_inputs
    if _b1_inputs is None:
        sources = [source_buffer(b) for b in range(8)]
        _b1_inputs = (sources, [reference_checksum(s) for s in sources])
    return _b1_inputs


def b1(impl):
    if impl == "py-inproc":
        return b1_inproc()
    sources, expected = b1_inputs()

    def check(k, s):
        if s != expected[k % 8]:
            wrong(f"B1 {impl}: task {k} checksum {s}, want {expected[k % 8]}")

    peer = make_peer(impl, 1)
    for b in range(8):  # untimed warm-up: one task per source buffer
        check(b, peer.call(checksum, sources[b]))
    # One worker runs its tasks in order, so the oldest outstanding task is the next to complete:
    # waiting for it keeps "submit whenever fewer than 4 are outstanding" exact.
    outstanding = collections.deque()
    t0 = now_ns()
    for k in range(B1_TASKS):
        if len(outstanding) == B1_WINDOW:
            j, pending = outstanding.popleft()
            check(j, peer.result(pending))
        outstanding.append((k, peer.submit(checksum, sources[k % 8])))
    while outstanding:
        j, pending = outstanding.popleft()
        check(j, peer.result(pending))
    seconds = (now_ns() - t0) / 1e9
    peer.close()
    emit("B1", impl, "us_per_task_copy", seconds * 1e6 / B1_TASKS, "us")
    emit("B1", impl, "MiB_per_s_copy", B1_TASKS / seconds, "MiB/s")


def b1_inproc():
    """Context figure: the checksum alone in the supervisor."""
    sources, expected = b1_inputs()
    checksum(sources[0])
    t0 = now_ns()
    for k in range(B1_INPROC_REPS):
        if checksum(sources[k % 8]) != expected[k % 8]:
            wrong(f"B1 in-process checksum of buffer {k % 8}")
    emit("B1", "py-inproc", "checksum_us_per_MiB", (now_ns() - t0) / 1e3 / B1_INPROC_REPS, "us")


# ---- C1: CPU scaling, 512 x fib(30) on two workers against the serial baseline ----

# One serial run per round, shared by both pools: at 512 x fib(30) a serial run is about as long as
# both parallel runs together, so alternating per pool would double the round (docs/workloads.md).
# The first pool runs before it, the second after it.
c1_serial_ms = None


def c1(impl):
    global c1_serial_ms
    peer = make_peer(impl, 2)
    warm_up(peer, 2)
    t0 = now_ns()
    pending = [peer.submit(fib30, None) for _ in range(C1_TASKS)]
    results = [peer.result(p) for p in pending]
    w = (now_ns() - t0) / 1e6
    peer.close()
    if results != [FIB30] * C1_TASKS:
        wrong(f"C1 {impl}: fib(30) tasks returned {sorted(set(results))}")
    if c1_serial_ms is None:
        t0 = now_ns()
        for _ in range(C1_TASKS):
            r = fib30()
            if r != FIB30:
                wrong(f"C1 serial fib(30) = {r}")
        c1_serial_ms = (now_ns() - t0) / 1e6
    s = c1_serial_ms
    emit("C1", impl, "serial_ms", s, "ms")
    emit("C1", impl, "wall_ms", w, "ms")
    emit("C1", impl, "efficiency_pct", 100 * s / (2 * w), "%")


# ---- S1: cold start, a new pool of one worker + its first task ----


def s1(impl):
    for method in ("fork", "spawn"):
        context = multiprocessing.get_context(method)
        samples = []
        for rep in range(S1_WARMUP + S1_REPS[method]):
            t0 = now_ns()
            peer = make_peer(impl, 1, context)
            r = peer.call(inc, 41)
            ms = (now_ns() - t0) / 1e6
            if r != 42:
                wrong(f"S1 {impl} {method}: inc(41) returned {r}")
            peer.close()  # teardown is not timed
            if rep >= S1_WARMUP:
                samples.append(ms)
        emit("S1", impl, f"p50_ms_{method}", percentile(samples, 0.5), "ms")


# ---- I1: idle cost of a warmed-up pool of 2 workers ----


def cpu_snapshot():
    """On-CPU nanoseconds of every thread of this process and of all its descendant processes,
    keyed by (pid, tid): /proc/PID/task/TID/schedstat, first field (ns resolution, unlike the
    10 ms ticks of /proc/PID/stat)."""
    out = {}

    def visit(pid):
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            return  # exited meanwhile
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    out[(pid, tid)] = int(f.read().split()[0])
                with open(f"/proc/{pid}/task/{tid}/children") as f:
                    children = f.read().split()
            except OSError:
                continue  # the thread exited meanwhile
            for child in children:
                visit(int(child))

    visit(os.getpid())
    return out


def i1(impl, seconds):
    peer = make_peer(impl, 2)
    warm_up(peer, 2)
    before = cpu_snapshot()
    t0 = now_ns()
    time.sleep(seconds)  # the workload is to idle
    after = cpu_snapshot()
    elapsed = (now_ns() - t0) / 1e9
    r = peer.call(inc, 41)
    if r != 42:
        wrong(f"I1 {impl}: inc(41) after idling returned {r}")
    peer.close()
    used_ns = sum(ns - before.get(key, 0) for key, ns in after.items())
    vanished = [key for key in before if key not in after]
    if vanished:
        sys.stderr.write(f"bench.py: I1 {impl}: threads exited while idle (not counted): {vanished}\n")
    emit("I1", impl, "cpu_pct", 100 * used_ns / 1e9 / elapsed, "%")


# ---- main ----

PLAN = {
    "L1": (l1, ("py-processpool", "py-mppool")),
    "T1": (t1, ("py-processpool", "py-mppool")),
    "B1": (b1, ("py-processpool", "py-mppool", "py-inproc")),
    "C1": (c1, ("py-processpool", "py-mppool")),
    "S1": (s1, ("py-processpool", "py-mppool")),
    "I1": (None, ("py-processpool", "py-mppool")),
}


def kill_descendants():
    """SIGKILLs every process below this one, so that no worker outlives a failed round."""
    for pid in {pid for pid, _ in cpu_snapshot()} - {os.getpid()}:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def die(message, status):
    sys.stdout.flush()
    sys.stderr.write(f"bench.py: {message}\n")
    sys.stderr.flush()
    kill_descendants()
    os._exit(status)  # pool threads may still be blocked on the dead workers


def parse_list(parser, value, known, what):
    items = [item for item in value.split(",") if item]
    for item in items:
        if item not in known:
            parser.error(f"unknown {what} '{item}' (known: {', '.join(known)})")  # exits 2
    return items


def main():
    global VERBOSE
    parser = argparse.ArgumentParser(description="Python peers: one round of the docs/workloads.md workloads.")
    parser.add_argument("--workload", "--workloads", default=",".join(WORKLOADS),
                        help="comma-separated workloads (default: all supported: %(default)s)")
    parser.add_argument("--impl", "--impls", default=",".join(IMPLS),
                        help="comma-separated implementations (default: %(default)s)")
    parser.add_argument("--quick", action="store_true", help="I1 idles 2 s instead of 10 s")
    parser.add_argument("--verbose", action="store_true", help="per-step timings on stderr")
    parser.add_argument("--timeout", type=float, default=900, help="watchdog for the round, seconds")
    args = parser.parse_args()
    VERBOSE = args.verbose
    workloads = parse_list(parser, args.workload, WORKLOADS + NOT_HERE, "workload")
    impls = parse_list(parser, args.impl, IMPLS, "implementation")
    for w in workloads:
        if w in NOT_HERE:
            note(f"{w} is not run by the Python peers (README.md says why)")
    if sys.byteorder != "little" or struct.calcsize("Q") != 8:
        raise SystemExit("bench.py: B1 assumes a little-endian host with 8-byte 'Q'")

    watchdog = threading.Timer(
        args.timeout, lambda: die(f"watchdog: the round took more than {args.timeout} s", 4))
    watchdog.daemon = True
    watchdog.start()

    idle_seconds = 2 if args.quick else 10
    try:
        for workload in WORKLOADS:
            if workload not in workloads:
                continue
            run, supported = PLAN[workload]
            for impl in supported:
                if impl not in impls:
                    continue
                t0 = now_ns()
                if workload == "I1":
                    i1(impl, idle_seconds)
                else:
                    run(impl)
                note(f"{workload} {impl}: {(now_ns() - t0) / 1e9:.1f} s")
    except WrongResult as err:
        die(str(err), 3)
    except BaseException as err:  # noqa: BLE001 - any failure ends the round with a message
        import traceback

        traceback.print_exc()
        die(f"error: {type(err).__name__}: {err}", 1)
    watchdog.cancel()


if __name__ == "__main__":
    main()
