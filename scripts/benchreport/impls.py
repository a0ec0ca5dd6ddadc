"""Implementation names (docs/workloads.md): procpool, its peers, baselines and diagnostics."""

from __future__ import annotations


# Baselines (physical limits, kernel floors): shown, never counted as "the best peer".
BASELINES = {"raw-ring", "pipe", "socketpair", "spawn-static", "spawn-dynamic", "fork",
             "cxx-fork", "memcpy"}
DIAGNOSTIC_SUFFIXES = ("-samecpu", "-xcpu", "-inproc")
# Peers that run their tasks in the benchmark's own process (boost::asio::thread_pool, issue 12):
# no isolation, but what a C++ program would use instead of procpool, so peers (counted in "the
# best peer"), not baselines, and not the "-inproc" diagnostics (a figure measured in one process
# for context, such as the checksum alone).
IN_PROCESS_PEERS = {"asio-pool", "asio-pool-callback"}


def is_baseline(impl: str) -> bool:
    return impl in BASELINES or impl.startswith("shm-")


def is_diagnostic(impl: str) -> bool:
    return impl.endswith(DIAGNOSTIC_SUFFIXES)


def is_peer(impl: str) -> bool:
    return impl != "procpool" and not is_baseline(impl) and not is_diagnostic(impl)


def is_in_process_peer(impl: str) -> bool:
    return impl in IN_PROCESS_PEERS


def impl_sort_key(impl: str):
    # procpool first, then the peers, then the baselines, each alphabetically.
    return (0 if impl == "procpool" else 2 if is_baseline(impl) or is_diagnostic(impl) else 1, impl)
