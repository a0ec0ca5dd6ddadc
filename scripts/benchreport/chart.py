"""docs/benchmarks.png: three panels of medians with min-max whiskers, drawn with gnuplot."""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import tempfile

from .formatting import human
from .headlines import by_impl, t1_best, t1_default
from .impls import is_baseline, is_diagnostic


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
        # One message per task (the default path) next to the best strategy, when they differ.
        default, best = t1_default(impl, figs), t1_best(figs)
        for f in [default] if default is not None and default is not best else []:
            short = re.sub(r"^tput_", "", f.name)
            t1.append(("%s\\nper task\\n%s" % (impl, short), impl, f.median, min(f.values),
                       max(f.values), f.unit))
        if best:
            short = re.sub(r"^tput_", "", best.name)
            t1.append(("%s\\n%s" % (impl, short), impl, best.median, min(best.values),
                       max(best.values), best.unit))
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
        ("T1 throughput, per task and best strategy (higher is better)", "tasks per second (log scale)", t1),
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
