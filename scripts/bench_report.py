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

This file is the entry point only (scripts/bench.sh calls it by this name); the work is in
scripts/benchreport/, one module per concept (its __init__ lists them).
"""

import os
import sys

# The package sits beside this file: put scripts/ on sys.path however this file is run
# (`python3 scripts/bench_report.py` already does, runpy.run_path does not). No __pycache__ in
# scripts/benchreport/: a benchmark run should leave no untracked files in the source tree (the
# single-file script never did).
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from benchreport.cli import main  # noqa: E402  (after the path and bytecode settings)

if __name__ == "__main__":
    sys.exit(main(__doc__.splitlines()[0]))
