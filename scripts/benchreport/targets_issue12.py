"""Issue 12's targets (the per-task path, idle, starts, copy path), each met, missed or n/a."""

from __future__ import annotations

from .formatting import fmt, human
from .impls import is_peer


def _pick(figures, workload, impl, name):
    return figures.get((workload, impl, name))


def _peers(figures, workload, name):
    return [f for (w, impl, n), f in figures.items() if w == workload and n == name
            and is_peer(impl)]


def targets_issue12(figures):
    """Each: (description, value text, target text, status, detail)."""
    out = []

    def add(desc, value, target_text, ok, detail, unit=""):
        if value is None:
            out.append((desc, "–", target_text, "n/a", detail or "missing figure"))
        else:
            out.append((desc, human(value, unit), target_text, "met" if ok else "missed", detail))

    def ratio(desc, num, den, target_text, ok, unit):
        if num is None or den is None:
            add(desc, None, target_text, False, None)
            return
        r = num.median / den.median
        add(desc, r, target_text, ok(r),
            "%s / %s" % (human(num.median, unit), human(den.median, unit)))

    futures = _pick(figures, "T1", "procpool", "tput_2w_futures_window1024")
    callbacks = max((f for f in (_pick(figures, "T1", "procpool", n)
                                 for n in ("tput_2w_batch_window1024",
                                           "tput_2w_batch_submitall")) if f),
                    key=lambda f: f.median, default=None)
    ratio("T1 per task, futures: procpool / boost-mq", futures,
          _pick(figures, "T1", "boost-mq", "tput_2w_window1024"), ">= 2", lambda r: r >= 2,
          "tasks/s")
    if callbacks:
        add("T1 per task, callbacks: procpool (tasks/s)", callbacks.median, ">= 10M",
            callbacks.median >= 10e6, callbacks.name, "tasks/s")
    else:
        add("T1 per task, callbacks: procpool (tasks/s)", None, ">= 10M", False, None)
    ratio("T1 per task, futures: procpool / asio-pool", futures,
          _pick(figures, "T1", "asio-pool", "tput_2w_window1024"), ">= 1.5",
          lambda r: r >= 1.5, "tasks/s")
    ratio("T1 per task, callbacks: procpool / asio-pool-callback", callbacks,
          _pick(figures, "T1", "asio-pool-callback", "tput_2w_window1024"), ">= 1.5",
          lambda r: r >= 1.5, "tasks/s")

    for name, limit in (("p50", 1.2), ("p99", 5.0)):
        f = _pick(figures, "L1", "procpool", name)
        add("L1 %s: procpool (us)" % name, f.median if f else None, "<= %s" % fmt(limit),
            f is not None and f.median <= limit, "one task in flight")

    idle = _pick(figures, "I1", "procpool", "cpu_pct")
    best_idle = min(_peers(figures, "I1", "cpu_pct"), key=lambda f: f.median, default=None)
    add("I1: procpool idle CPU (% of a core)", idle.median if idle else None, "<= 0.02",
        idle is not None and idle.median <= 0.02, "2 warmed-up workers, 10 s idle")
    if idle and best_idle:
        ratio("I1: procpool / best peer (%s)" % best_idle.impl, idle, best_idle, "<= 2",
              lambda r: r <= 2, "%")
    else:
        add("I1: procpool / best peer", None, "<= 2", False, None)

    for workload, limit in (("S1", 1.0), ("R1", 1.2)):
        f = _pick(figures, workload, "procpool", "p50_ms")
        add("%s p50: procpool (ms)" % workload, f.median if f else None, "<= %s" % fmt(limit),
            f is not None and f.median <= limit, "")

    c1 = _pick(figures, "C1", "procpool", "efficiency_pct")
    best_c1 = max(_peers(figures, "C1", "efficiency_pct"), key=lambda f: f.median, default=None)
    add("C1 efficiency: procpool (%)", c1.median if c1 else None, ">= 95",
        c1 is not None and c1.median >= 95, "2 workers, 512 fib(30)")
    if c1 and best_c1:
        add("C1 efficiency: procpool - best peer (%s), points" % best_c1.impl,
            c1.median - best_c1.median, ">= 0", c1.median >= best_c1.median,
            "%s%% vs %s%%" % (fmt(c1.median), fmt(best_c1.median)))
    else:
        add("C1 efficiency: procpool - best peer, points", None, ">= 0", False, None)

    m1 = _pick(figures, "M1", "procpool", "lines_per_s")
    add("M1: procpool map (lines/s)", m1.median if m1 else None, ">= 3M",
        m1 is not None and m1.median >= 3e6, "seq 1 1000000, 2 workers", "lines/s")

    # The slowest size by its median over the rounds (GiB_per_s_lowest, the slowest size of
    # each round, lets one noisy sample of any size stand for the whole round).
    sizes = [f for (w, impl, n), f in figures.items() if w == "B2" and impl == "procpool"
             and n.startswith("GiB_per_s_") and n.endswith("MiB")]
    b2 = min(sizes, key=lambda f: f.median, default=None)
    add("B2: copy path, slowest size's median over 1-64 MiB (GiB/s)",
        b2.median if b2 else None, ">= 2", b2 is not None and b2.median >= 2,
        "%s; one task in flight, one worker" % b2.name[len("GiB_per_s_"):] if b2 else None)

    b1 = min((f for f in (_pick(figures, "B1", "procpool", n)
                          for n in ("us_per_task_copy", "us_per_task_shared")) if f),
             key=lambda f: f.median, default=None)
    ratio("B1: procpool per 1 MiB task / checksum in process", b1,
          _pick(figures, "B1", "procpool", "checksum_us_per_MiB_inproc"), "<= 1.2",
          lambda r: r <= 1.2, "us")
    return out
