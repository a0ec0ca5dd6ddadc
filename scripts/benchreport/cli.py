"""The command line scripts/bench.sh peers calls (through scripts/bench_report.py)."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from collections import OrderedDict

from .chart import write_chart
from .figures import read_figures, sorted_figures
from .markdown_report import write_markdown
from .summary import SUMMARY_HEADER, summary_table_rows
from .tables import text_table
from .targets import targets


def main(description: str) -> int:
    ap = argparse.ArgumentParser(description=description)
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
