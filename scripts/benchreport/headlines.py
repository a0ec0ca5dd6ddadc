"""The headline figure of each implementation in a workload (T1 strategies, B1 delivery)."""

from __future__ import annotations

import re
from collections import OrderedDict

from .figures import Figure, sorted_figures


def by_impl(figures, workload: str) -> "OrderedDict[str, dict[str, Figure]]":
    out: "OrderedDict[str, dict[str, Figure]]" = OrderedDict()
    for f in sorted_figures(figures):
        if f.workload == workload:
            out.setdefault(f.impl, {})[f.name] = f
    return out


def tput_figures(figs: dict[str, Figure]) -> list[Figure]:
    return [f for n, f in figs.items() if n.startswith("tput") and f.unit == "tasks/s"]


def t1_default(impl: str, figs: dict[str, Figure]) -> Figure | None:
    """The one-message-per-task strategy: window 1024 (futures for procpool), or chunksize 1."""
    cands = tput_figures(figs)
    if impl == "procpool":
        cands = [f for f in cands if "futures" in f.name] or cands
    plain = [f for f in cands if "window1024" in f.name and "batch" not in f.name
             and "ctpw" not in f.name]
    chunk1 = [f for f in cands if re.search(r"chunk1(?!\d)", f.name)]
    pick = plain or chunk1
    if not pick:
        return None
    two = [f for f in pick if "_2w" in f.name]  # the workload's two workers when both exist
    return (two or pick)[0]


def t1_best(figs: dict[str, Figure]) -> Figure | None:
    cands = tput_figures(figs)
    return max(cands, key=lambda f: f.median) if cands else None


def procpool_fast_path(figs: dict[str, Figure]) -> Figure | None:
    """procpool's best callback strategy: submit_batch (one message per task) or submit_chunked."""
    cands = [f for f in tput_figures(figs) if "batch" in f.name or "chunk" in f.name]
    return max(cands, key=lambda f: f.median) if cands else None


def b1_best(figs: dict[str, Figure]) -> Figure | None:
    cands = [f for n, f in figs.items() if n.startswith("us_per_task")]
    return min(cands, key=lambda f: f.median) if cands else None


def pick(figures, workload, impl, name) -> Figure | None:
    return figures.get((workload, impl, name))
