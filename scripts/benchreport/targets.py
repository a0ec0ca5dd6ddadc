"""Issue 5's targets: procpool's ratios to its peers, each marked met, missed or n/a."""

from __future__ import annotations

from .formatting import fmt, human
from .headlines import b1_best, by_impl, pick, procpool_fast_path, t1_default, tput_figures
from .impls import is_peer


def targets(figures):
    """Each: (description, ratio text, target text, status, detail)."""
    out = []
    T1 = by_impl(figures, "T1")
    B1 = by_impl(figures, "B1")
    pp_l1 = pick(figures, "L1", "procpool", "p50")

    def add(desc, value, target_text, ok, detail):
        if value is None:
            out.append((desc, "–", target_text, "n/a", detail))
        else:
            out.append((desc, fmt(value), target_text, "met" if ok else "missed", detail))

    for peer in ("piscina", "boost-mq"):
        other = pick(figures, "L1", peer, "p50")
        if pp_l1 and other:
            r = pp_l1.median / other.median
            add("L1 p50: procpool / %s" % peer, r, "<= 0.05", r <= 0.05,
                "%s us / %s us" % (fmt(pp_l1.median), fmt(other.median)))
        else:
            add("L1 p50: procpool / %s" % peer, None, "<= 0.05", False, "missing figure")

    fast = procpool_fast_path(T1.get("procpool", {}))
    best_peer = best_2w = None
    for impl, figs in T1.items():
        if is_peer(impl):
            for f in tput_figures(figs):
                if best_peer is None or f.median > best_peer.median:
                    best_peer = f
                if "_1w" not in f.name and (best_2w is None or f.median > best_2w.median):
                    best_2w = f
    if fast and best_peer:
        r = fast.median / best_peer.median
        detail = "%s (%s) / %s %s (%s)" % (human(fast.median, "tasks/s"), fast.name,
                                           best_peer.impl, human(best_peer.median, "tasks/s"),
                                           best_peer.name)
        if best_2w is not None and best_2w is not best_peer:
            detail += "; best two-worker peer figure: %s %s (%s), ratio %s" % (
                best_2w.impl, human(best_2w.median, "tasks/s"), best_2w.name,
                fmt(fast.median / best_2w.median))
        add("T1: procpool fast path / best peer figure", r, ">= 2", r >= 2, detail)
    else:
        add("T1: procpool fast path / best peer figure", None, ">= 2", False, "missing figure")
    pis_default = t1_default("piscina", T1.get("piscina", {}))
    if fast and pis_default:
        r = fast.median / pis_default.median
        add("T1: procpool fast path / piscina default", r, ">= 100", r >= 100,
            "%s / %s (%s)" % (human(fast.median, "tasks/s"), human(pis_default.median, "tasks/s"),
                              pis_default.name))
    else:
        add("T1: procpool fast path / piscina default", None, ">= 100", False, "missing figure")

    # Piscina's best delivery (transfer: the buffer moves, no copy) against procpool's best
    # (shared memory: no copy either); procpool's copying path is shown beside it.
    pp_b1 = b1_best(B1.get("procpool", {}))
    pp_copy = B1.get("procpool", {}).get("us_per_task_copy")
    pis_tr = [f for n, f in B1.get("piscina", {}).items()
              if n.startswith("us_per_task") and "transfer" in n]
    if pp_b1 and pis_tr:
        r = pis_tr[0].median / pp_b1.median  # = procpool MiB/s / piscina MiB/s
        detail = "%s us (%s) vs %s us per 1 MiB task" % (fmt(pp_b1.median), pp_b1.name,
                                                          fmt(pis_tr[0].median))
        if pp_copy is not None and pp_copy is not pp_b1:
            detail += "; procpool copying: %s us, ratio %s" % (
                fmt(pp_copy.median), fmt(pis_tr[0].median / pp_copy.median))
        add("B1: procpool MiB/s / piscina (transfer)", r, ">= 5", r >= 5, detail)
    else:
        add("B1: procpool MiB/s / piscina (transfer)", None, ">= 5", False, "missing figure")

    pp_c1 = pick(figures, "C1", "procpool", "efficiency_pct")
    pis_c1 = pick(figures, "C1", "piscina", "efficiency_pct")
    if pp_c1 and pis_c1:
        r = pp_c1.median / pis_c1.median
        add("C1 efficiency: procpool / piscina", r, ">= 1", r >= 1,
            "%s%% vs %s%%" % (fmt(pp_c1.median), fmt(pis_c1.median)))
    else:
        add("C1 efficiency: procpool / piscina", None, ">= 1", False, "missing figure")
    if pp_c1:
        add("C1 efficiency: procpool (%)", pp_c1.median, ">= 95", pp_c1.median >= 95,
            "2 workers, 512 fib(30)")
    else:
        add("C1 efficiency: procpool (%)", None, ">= 95", False, "missing figure")

    pis_s1 = pick(figures, "S1", "piscina", "p50_ms")
    for w in ("S1", "R1"):
        pp = pick(figures, w, "procpool", "p50_ms")
        if pp and pis_s1:
            r = pp.median / pis_s1.median
            add("%s p50: procpool / piscina cold start" % w, r, "<= 0.1", r <= 0.1,
                "%s ms / %s ms" % (fmt(pp.median), fmt(pis_s1.median)))
        else:
            add("%s p50: procpool / piscina cold start" % w, None, "<= 0.1", False,
                "missing figure")

    pp_m1 = pick(figures, "M1", "procpool", "lines_per_s")
    xa = pick(figures, "M1", "xargs-P2", "lines_per_s")
    if pp_m1 and xa:
        r = pp_m1.median / xa.median
        add("M1: procpool map / xargs -P2", r, ">= 300", r >= 300,
            "%s / %s lines/s" % (human(pp_m1.median, "lines/s"), human(xa.median, "lines/s")))
    else:
        add("M1: procpool map / xargs -P2", None, ">= 300", False, "missing figure")

    pp_i1 = pick(figures, "I1", "procpool", "cpu_pct")
    if pp_i1:
        add("I1: procpool idle CPU (% of a core)", pp_i1.median, "< 1", pp_i1.median < 1,
            "2 warmed-up workers, idle")
    else:
        add("I1: procpool idle CPU (% of a core)", None, "< 1", False, "missing figure")
    return out
