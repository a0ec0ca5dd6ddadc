"""Implementation names (docs/workloads.md): procpool, its peers, baselines and diagnostics."""

from __future__ import annotations


# Baselines (physical limits, kernel floors): shown, never counted as "the best peer".
BASELINES = {"raw-ring", "pipe", "socketpair", "spawn-static", "spawn-dynamic", "fork",
             "cxx-fork", "memcpy"}
DIAGNOSTIC_SUFFIXES = ("-samecpu", "-xcpu", "-inproc")


def is_baseline(impl: str) -> bool:
    return impl in BASELINES or impl.startswith("shm-")


def is_diagnostic(impl: str) -> bool:
    return impl.endswith(DIAGNOSTIC_SUFFIXES)


def is_peer(impl: str) -> bool:
    return impl != "procpool" and not is_baseline(impl) and not is_diagnostic(impl)


def impl_sort_key(impl: str):
    # procpool first, then the peers, then the baselines, each alphabetically.
    return (0 if impl == "procpool" else 2 if is_baseline(impl) or is_diagnostic(impl) else 1, impl)
