"""The table of medians with procpool / peer ratios, one row per implementation and headline."""

from __future__ import annotations

from .figures import Figure
from .formatting import fmt, human
from .headlines import b1_best, by_impl, t1_best, t1_default


# Rows of the summary table: (workload, label, selector(impl, figs) -> [Figure], better).
def summary_rows(figures):
    def one(name):
        return lambda impl, figs: [figs[name]] if name in figs else []

    def ms_figs(impl, figs):
        return [f for n, f in figs.items() if f.unit == "ms" and n.startswith("p50")]

    kinds = [
        ("L1", "p50 latency", one("p50"), "lower"),
        ("L1", "p99 latency", one("p99"), "lower"),
        ("T1", "default strategy (one message per task)",
         lambda i, figs: [f for f in [t1_default(i, figs)] if f], "higher"),
        ("T1", "best strategy", lambda i, figs: [f for f in [t1_best(figs)] if f], "higher"),
        ("B1", "1 MiB task, best delivery", lambda i, figs: [f for f in [b1_best(figs)] if f],
         "lower"),
        ("C1", "parallel efficiency", one("efficiency_pct"), "higher"),
        ("S1", "cold start p50", ms_figs, "lower"),
        ("R1", "restart p50", ms_figs, "lower"),
        ("I1", "idle CPU", one("cpu_pct"), "lower"),
        ("M1", "procpool map vs CLI tools", one("lines_per_s"), "higher"),
    ]
    rows = []
    for workload, label, select, better in kinds:
        impls = by_impl(figures, workload)
        pp = select("procpool", impls.get("procpool", {}))
        ref = pp[0] if pp else None
        for impl, figs in impls.items():
            for f in select(impl, figs):
                rows.append((workload, label, f, ref, better))
    return rows


def ratio_cell(ref: Figure | None, f: Figure, better: str) -> tuple[str, str]:
    if ref is None or f.impl == "procpool" or f.median == 0 or ref.median == 0:
        return ("", "")
    r = ref.median / f.median
    adv = r if better == "higher" else 1.0 / r
    word = "better" if adv >= 1 else "worse"
    return (fmt(r), "%s× %s" % (fmt(adv if adv >= 1 else 1.0 / adv), word))


def summary_table_rows(figures):
    rows = []
    for workload, label, f, ref, better in summary_rows(figures):
        ratio, adv = ratio_cell(ref, f, better)
        rows.append([workload, label, f.impl, f.name, human(f.median, f.unit), f.unit,
                     f.spread(), ratio, adv])
    return rows


SUMMARY_HEADER = ["workload", "headline", "impl", "figure", "median", "unit", "spread",
                  "procpool/peer", "procpool is"]
