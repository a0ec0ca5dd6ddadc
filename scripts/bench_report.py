#!/usr/bin/env python3
"""Summarises a `scripts/bench.sh peers` run (issue 5, docs/workloads.md).

Input: the raw figure lines of every round, one per line, `WORKLOAD IMPL FIGURE VALUE UNIT`
(extra fields after the unit are ignored), and optional notes (one per line: skipped peers,
failures). Output:
  * on stdout: the final figure lines in the docs/workloads.md format (median over the rounds,
    with the spread), then a table of medians with procpool / peer ratios and the issue's
    targets, marked met or missed;
  * --md: docs/benchmarks.md (machine, versions, date, the tables, targets, caveats);
  * --png: docs/benchmarks.png, three panels drawn with gnuplot: L1 p50 latency (log),
    T1 best throughput (log), S1 cold start and R1 restart (ms, log) per implementation.

Standard library only (it runs under whatever python3 is first on PATH); the chart needs
gnuplot (Debian: gnuplot-nox), and is skipped with a note when it is missing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import glob
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from collections import OrderedDict

WORKLOAD_ORDER = ["L1", "T1", "B1", "C1", "S1", "R1", "I1", "M1"]
LINE_RE = re.compile(r"^([A-Z][A-Z0-9]*)\s+(\S+)\s+(\S+)\s+([-+0-9.eE]+|nan|inf)\s+(\S+)")

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


# ---- numbers -----------------------------------------------------------------------------------

def fmt(v: float) -> str:
    """Three significant digits, never scientific notation (bench_stats.hpp's format_value)."""
    if v is None:
        return "–"
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if v == 0:
        return "0"
    mag = abs(v)
    e = math.floor(math.log10(mag))
    rounded = round(mag / 10 ** (e - 2)) * 10 ** (e - 2)
    if rounded >= 10 ** (e + 1):
        e += 1
    if e >= 2:
        return "%.0f" % math.copysign(rounded, v)
    out = "%.*f" % (2 - e, v)
    if "." in out:
        out = out.rstrip("0").rstrip(".")
    return "0" if out == "-0" else out


def human(v: float, unit: str) -> str:
    """Short human form for tables and chart labels: 1.2M, 47k, 0.41."""
    if v is None:
        return "–"
    if unit in ("tasks/s", "msgs/s", "lines/s", "MiB/s") and abs(v) >= 1000:
        for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
            if abs(v) >= div:
                return fmt(v / div) + suffix
    return fmt(v)


def thousands(text: str, default: str) -> str:
    """'20000' -> '20,000' (the default when empty or not a number)."""
    return "{:,}".format(int(text)) if str(text).isdigit() else default


def median(values: list[float]) -> float:
    s = sorted(values)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2.0


class Figure:
    def __init__(self, workload: str, impl: str, name: str, unit: str):
        self.workload, self.impl, self.name, self.unit = workload, impl, name, unit
        self.values: list[float] = []

    @property
    def median(self) -> float:
        return median(self.values)

    def line(self) -> str:
        return "%s %s %s %s %s (min %s, max %s, n=%d)" % (
            self.workload, self.impl, self.name, fmt(self.median), self.unit,
            fmt(min(self.values)), fmt(max(self.values)), len(self.values))

    def spread(self) -> str:
        if len(self.values) == 1:
            return "n=1"
        return "%s–%s (n=%d)" % (human(min(self.values), self.unit),
                                 human(max(self.values), self.unit), len(self.values))


def read_figures(path: str) -> "OrderedDict[tuple, Figure]":
    figures: "OrderedDict[tuple, Figure]" = OrderedDict()
    with open(path, encoding="utf-8") as f:
        for raw in f:
            m = LINE_RE.match(raw.strip())
            if not m:
                continue
            workload, impl, name, value, unit = m.groups()
            key = (workload, impl, name)
            if key not in figures:
                figures[key] = Figure(workload, impl, name, unit)
            figures[key].values.append(float(value))
    return figures


def impl_sort_key(impl: str):
    # procpool first, then the peers, then the baselines, each alphabetically.
    return (0 if impl == "procpool" else 2 if is_baseline(impl) or is_diagnostic(impl) else 1, impl)


def sorted_figures(figures) -> list[Figure]:
    def key(f: Figure):
        w = WORKLOAD_ORDER.index(f.workload) if f.workload in WORKLOAD_ORDER else 99
        return (w, f.workload, impl_sort_key(f.impl), f.name)
    return sorted(figures.values(), key=key)


# ---- headline figures per implementation ---------------------------------------------------------

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


# ---- targets (issue 5) ----------------------------------------------------------------------------

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
        add("C1 efficiency: procpool (%)", pp_c1.median, ">= 90", pp_c1.median >= 90,
            "2 workers, 64 fib(27)")
    else:
        add("C1 efficiency: procpool (%)", None, ">= 90", False, "missing figure")

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


# ---- text tables --------------------------------------------------------------------------------

def text_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    for r in rows:
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())
    return "\n".join(lines)


def md_table(header: list[str], rows: list[list[str]], align: str) -> str:
    assert len(align) == len(header), (header, align)
    out = ["| " + " | ".join(header) + " |",
           "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|"]
    for r in rows:
        out.append("| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |")
    return "\n".join(out)


def summary_table_rows(figures):
    rows = []
    for workload, label, f, ref, better in summary_rows(figures):
        ratio, adv = ratio_cell(ref, f, better)
        rows.append([workload, label, f.impl, f.name, human(f.median, f.unit), f.unit,
                     f.spread(), ratio, adv])
    return rows


SUMMARY_HEADER = ["workload", "headline", "impl", "figure", "median", "unit", "spread",
                  "procpool/peer", "procpool is"]


# ---- machine and versions -----------------------------------------------------------------------

def run(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
        return (out.stdout or out.stderr).strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def first_line(text: str) -> str:
    return text.splitlines()[0].strip() if text else ""


def machine_info() -> list[tuple[str, str]]:
    cpu = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            kb = int(f.readline().split()[1])
            mem = "%.1f GiB" % (kb / 1024 / 1024)
    except (OSError, ValueError, IndexError):
        pass
    distro = ""
    try:
        with open("/etc/os-release", encoding="utf-8") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    distro = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    debver = ""
    try:
        with open("/etc/debian_version", encoding="utf-8") as f:
            debver = f.read().strip()
    except OSError:
        pass
    try:
        load = "%.2f %.2f %.2f" % os.getloadavg()
    except OSError:
        load = ""
    return [
        ("CPU", cpu or platform.processor() or "unknown"),
        ("cores (nproc)", str(os.cpu_count())),
        ("memory", mem),
        ("kernel", platform.release()),
        ("distribution", distro + (" (%s)" % debver if debver else "")),
        ("load average at report time (1, 5, 15 min)", load),
    ]


def node_module_version(root: str, name: str) -> str:
    for path in sorted(glob.glob(os.path.join(root, "tests/bench/peers/node/**/node_modules/%s/"
                                              "package.json" % name), recursive=True)):
        try:
            with open(path, encoding="utf-8") as f:
                return json.load(f).get("version", "")
        except (OSError, ValueError):
            continue
    return ""


def versions(root: str, extra: dict[str, str]) -> list[tuple[str, str]]:
    boost = ""
    try:
        with open("/usr/include/boost/version.hpp", encoding="utf-8") as f:
            m = re.search(r'#define BOOST_LIB_VERSION "([0-9_]+)"', f.read())
            boost = m.group(1).replace("_", ".") if m else ""
    except OSError:
        pass
    out = [
        ("g++", first_line(run(["g++", "--version"]))),
        ("Boost", boost),
        ("cmake", first_line(run(["cmake", "--version"]))),
        ("node", run(["node", "--version"]) if shutil.which("node") else "not installed"),
        ("piscina", node_module_version(root, "piscina") or "not installed"),
        ("tinypool", node_module_version(root, "tinypool") or "not installed"),
        ("python3", run(["python3", "--version"])),
        ("GNU parallel", first_line(run(["parallel", "--version"])) if shutil.which("parallel")
         else "not installed"),
        ("xargs", first_line(run(["xargs", "--version"]))),
        ("gnuplot", run(["gnuplot", "--version"]) if shutil.which("gnuplot") else "not installed"),
    ]
    for k, v in extra.items():
        out.append((k, v))
    return out


# ---- chart --------------------------------------------------------------------------------------

def color(impl: str) -> str:
    if impl == "procpool":
        return "0x1f77b4"
    if is_baseline(impl) or is_diagnostic(impl):
        return "0x9a9a9a"
    return "0xff7f0e"


def chart_panels(figures):
    """[(title, ylabel, [(label, impl, median, min, max, unit)])]"""
    l1 = []
    for impl, figs in by_impl(figures, "L1").items():
        if "p50" in figs:
            f = figs["p50"]
            l1.append((impl, impl, f.median, min(f.values), max(f.values), f.unit))
    t1 = []
    for impl, figs in by_impl(figures, "T1").items():
        f = t1_best(figs)
        if f:
            short = re.sub(r"^tput_", "", f.name)
            t1.append(("%s\\n%s" % (impl, short), impl, f.median, min(f.values), max(f.values),
                       f.unit))
    s1 = []
    for w in ("S1", "R1"):
        for impl, figs in by_impl(figures, w).items():
            for name, f in figs.items():
                if f.unit != "ms":
                    continue
                suffix = re.sub(r"^p50_ms_?", "", name)  # Python's start method: fork, spawn
                label = impl + ("\\nR1 restart" if w == "R1" else "") + \
                    (("\\n" + suffix) if suffix else "")
                s1.append((label, impl, f.median, min(f.values), max(f.values), f.unit))
    return [
        ("L1 latency, p50 (lower is better)", "microseconds (log scale)", l1),
        ("T1 throughput, best strategy (higher is better)", "tasks per second (log scale)", t1),
        ("S1 cold start (and R1 restart after SIGKILL), p50 (lower is better)",
         "milliseconds (log scale)", s1),
    ]


def write_chart(figures, png: str, subtitle: str) -> str | None:
    """Draws the PNG with gnuplot; returns an error note, or None on success."""
    gnuplot = shutil.which("gnuplot")
    if not gnuplot:
        return "gnuplot not installed: chart not drawn (scripts/bench.sh peers installs gnuplot-nox)"
    panels = chart_panels(figures)
    tmp = tempfile.mkdtemp(prefix="procpool-bench-chart-")
    try:
        script = [
            "set terminal pngcairo size 1800,1250 font 'DejaVu Sans,10' noenhanced",
            "set output '%s'" % png.replace("'", "''"),
            "set multiplot title '%s' font ',13'" % subtitle.replace("'", "''"),
            "set style fill solid 0.85 border -1",
            "set boxwidth 0.7",
            "set logscale y",
            "set grid ytics mytics lc rgb '#dddddd'",
            "set xtics rotate by -40 left font ',9' nomirror",
            "set key off",
            "set bmargin 8",
        ]
        for i, (title, ylabel, rows) in enumerate(panels):
            data = os.path.join(tmp, "panel%d.dat" % i)
            with open(data, "w", encoding="utf-8") as f:
                for label, impl, med, lo, hi, unit in rows:
                    f.write('"%s" %r %r %r %s "%s"\n' % (label, med, lo, hi, color(impl),
                                                       human(med, unit)))
            # L1 and T1 side by side on top, S1/R1 (the most bars) across the whole bottom.
            origin, size = [("0,0.5", "0.5,0.46"), ("0.5,0.5", "0.5,0.46"), ("0,0", "1,0.48")][i]
            script.append("set origin %s" % origin)
            script.append("set size %s" % size)
            script.append("set title '%s' font ',12'" % title)
            # 10k, 1M, 100M on the throughput axis; plain numbers elsewhere.
            script.append("set format y '%s'" % ("%.0s%c" if i == 1 else "%g"))
            script.append("set ylabel '%s'" % ylabel)
            if not rows:
                script.append("set label 1 'no data in this run' at graph 0.5,0.5 center")
                script.append("set yrange [1:10]")
                script.append("plot 1/0 notitle")
                script.append("unset label 1")
                script.append("set yrange [*:*]")
                continue
            positive = [r[3] for r in rows if r[3] > 0] + [r[2] for r in rows if r[2] > 0]
            lo = min(positive) if positive else 1
            hi = max([r[4] for r in rows] + [r[2] for r in rows])
            script.append("set yrange [%r:%r]" % (10 ** math.floor(math.log10(lo) - 0.3),
                                                 10 ** math.ceil(math.log10(hi) + 0.3)))
            script.append("set xrange [-0.6:%r]" % (len(rows) - 0.4))
            script.append(
                ("plot '{d}' using 0:2:(0.7):5:xtic(1) with boxes lc rgb variable, "
                 "'{d}' using 0:2:3:4 with yerrorbars lc rgb 'black' pt 0, "
                 "'{d}' using 0:($4*1.6):6 with labels font ',9'").format(d=data))
        script.append("unset multiplot")
        gp = os.path.join(tmp, "chart.gp")
        with open(gp, "w", encoding="utf-8") as f:
            f.write("\n".join(script) + "\n")
        res = subprocess.run([gnuplot, gp], capture_output=True, text=True, timeout=60)
        if res.returncode != 0:
            return "gnuplot failed: " + (res.stderr.strip().splitlines() or ["?"])[-1]
        return None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ---- markdown -----------------------------------------------------------------------------------

def write_markdown(path, figures, notes, args, png_rel, chart_note, extra_versions):
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    cmd = "scripts/bench.sh peers" + (" --quick" if args.quick else "")
    md = []
    md.append("# Benchmarks: procpool next to its peers")
    md.append("")
    md.append("Generated by `%s` on %s (%d round%s, implementations interleaved round by round, "
              "run time %s). Do not edit by hand: rerun the command. The workloads are defined in "
              "docs/workloads.md (L1 latency, T1 throughput, B1 1 MiB payloads, C1 CPU scaling, S1 "
              "cold start, R1 restart, I1 idle cost, M1 `procpool map` against the command-line "
              "tools); every figure below is the median over the rounds, measured in this one "
              "run on this one machine."
              % (cmd, now, args.rounds, "" if args.rounds == 1 else "s",
                 ("%d s" % args.duration) if args.duration else "unknown"))
    md.append("")
    if chart_note is None:
        md.append("![L1 latency, T1 throughput, S1/R1 start-up per implementation](%s)" % png_rel)
        md.append("")
        md.append("Blue: procpool. Orange: peers (Piscina, tinypool, Python pools, Boost "
                  "message_queue). Grey: physical limits and kernel floors (raw spin ring, "
                  "pipe, socketpair, spawn and fork floors). Whiskers: min–max over the rounds.")
    else:
        md.append("(No chart: %s.)" % chart_note)
    md.append("")

    md.append("## Targets (issue 5)")
    md.append("")
    md.append("Ratios from this run's medians. On this noisy machine a ratio within about 20% "
              "of its target is not a clear verdict either way.")
    md.append("")
    md.append(md_table(["target", "ratio / value", "wanted", "status", "figures"],
                       [list(t) for t in targets(figures)], "lrrll"))
    md.append("")

    md.append("## Medians and procpool / peer ratios")
    md.append("")
    md.append("One row per implementation and headline figure. `procpool/peer` divides "
              "procpool's median by the row's; `procpool is` turns it into \"N× better\" in the "
              "figure's own direction (lower latency, higher throughput).")
    md.append("")
    md.append(md_table(SUMMARY_HEADER, summary_table_rows(figures), "llllrllrl"))
    md.append("")

    md.append("## Every figure")
    md.append("")
    md.append("In the docs/workloads.md line format, median of the rounds with the spread.")
    md.append("")
    md.append("```")
    for f in sorted_figures(figures):
        md.append(f.line())
    md.append("```")
    md.append("")

    md.append("## Machine and versions")
    md.append("")
    md.append(md_table(["", ""], [[k, v or "unknown"] for k, v in
                                  machine_info() + versions(args.root, extra_versions)], "ll"))
    md.append("")

    md.append("## Skipped, omitted and notes")
    md.append("")
    if notes:
        for n in notes:
            md.append("- " + n)
    else:
        md.append("- Every implementation ran in every round.")
    md.append("- Not measured here: the `shm-spinfutex3us`, `shm-spinfutex20us` and `shm-futex` "
              "ring variants, `memcpy` bandwidth, the raw ring's one-way 16-byte stream "
              "(`scripts/bench.sh transport` reports it, next to procpool's transport), and X1 "
              "(chaos: see docs/workloads.md and procpool's chaos test).")
    md.append("- Raw transports (raw-ring, boost-mq) report T1 with one worker (`_1w`); boost-mq "
              "also with two (`_2w`, both workers taking from one queue).")
    md.append("- M1 peers run `procpool-peer-tiny-static` (a static program printing its argument "
              "+ 1 with raw system calls, the cheapest process these tools can start) over %s "
              "lines for xargs and %s for GNU parallel, scaled to lines/s; their output is "
              "checked after a numeric sort, since neither keeps input order with two jobs."
              % (thousands(args.xargs_lines, "20,000"), thousands(args.parallel_lines, "20,000")))
    md.append("")

    md.append("## Caveats")
    md.append("")
    md.append("- The machine is a shared, noisy 2-vCPU VM: differences under about 20% are "
              "noise, and a figure taken minutes apart can move 1.5×. Other work on the machine "
              "(builds, tests) during the run shows up as spread. Compare only figures of one run.")
    md.append("- With 2 vCPUs, C1's two workers compete with everything else on the machine; "
              "busy-spinning peers (raw-ring) degrade sharply when they share a core.")
    if args.quick:
        md.append("- This is a `--quick` run: %d round%s instead of 3 (so no spread: every "
                  "figure is one measurement); I1 idles 2 s instead of "
                  "10 s; GNU parallel gets %s lines instead of 20,000; boost-mq's S1 takes 20 "
                  "measured spawns instead of 50; the Node and Python peers run their own "
                  "`--quick` variants (I1 idles 2 s)."
                  % (args.rounds, "" if args.rounds == 1 else "s",
                     thousands(args.parallel_lines, "2,000")))
    else:
        md.append("- `--quick` runs 1 round, a 2 s I1, GNU parallel over 2,000 lines, 20 "
                  "boost-mq S1 spawns, and the Node and Python peers' own `--quick` variants.")
    md.append("- The raw spin ring, pipe, socketpair and the spawn/fork floors are not pools: "
              "they bound what any process pool can reach on this machine.")
    md.append("- procpool's figures are measured through its public API (`procpool::Pool`, "
              "`procpool map`), with real worker processes, checked results and supervision on.")
    md.append("")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(md))


# ---- main ---------------------------------------------------------------------------------------

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", required=True, help="raw figure lines of every round")
    ap.add_argument("--notes", help="file with one note per line (skipped peers, failures)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--duration", type=int, default=0, help="run time in seconds")
    ap.add_argument("--xargs-lines", default="")
    ap.add_argument("--parallel-lines", default="")
    ap.add_argument("--md", help="write this markdown report (docs/benchmarks.md)")
    ap.add_argument("--png", help="write this chart (docs/benchmarks.png)")
    ap.add_argument("--root", default=os.getcwd(), help="repository root")
    ap.add_argument("--version", action="append", default=[], metavar="NAME=VALUE",
                    help="extra version line for the report")
    args = ap.parse_args()

    figures = read_figures(args.lines)
    if not figures:
        print("bench_report.py: no figure lines in %s" % args.lines, file=sys.stderr)
        return 1
    notes = []
    if args.notes and os.path.exists(args.notes):
        with open(args.notes, encoding="utf-8") as f:
            notes = [n.strip() for n in f if n.strip()]

    for f in sorted_figures(figures):
        print(f.line())
    print()
    print("Medians and procpool / peer ratios:")
    print(text_table(SUMMARY_HEADER, summary_table_rows(figures)))
    print()
    print("Targets (issue 5):")
    print(text_table(["target", "ratio/value", "wanted", "status", "figures"],
                     [list(t) for t in targets(figures)]))
    for n in notes:
        print("note: " + n)

    extra = OrderedDict(v.split("=", 1) for v in args.version if "=" in v)
    chart_note = None
    if args.png:
        subtitle = "procpool vs peers, %s, %d round%s%s" % (
            dt.date.today().isoformat(), args.rounds, "" if args.rounds == 1 else "s",
            ", --quick" if args.quick else "")
        chart_note = write_chart(figures, args.png, subtitle)
        if chart_note:
            print("note: " + chart_note, file=sys.stderr)
    if args.md:
        png_rel = os.path.relpath(args.png, os.path.dirname(os.path.abspath(args.md))) \
            if args.png else ""
        write_markdown(args.md, figures, notes, args, png_rel,
                       chart_note if args.png else "no --png given", extra)
        print("bench_report.py: wrote %s%s" % (args.md, (" and " + args.png)
                                                if args.png and not chart_note else ""),
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
