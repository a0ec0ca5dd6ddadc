"""The pieces of scripts/bench_report.py, one concept per module.

impls: which implementation names are procpool, peers, baselines or diagnostics;
formatting: how numbers are written; figures: the figure lines and their medians;
headlines: the one figure per implementation a table or target uses; summary: the
procpool / peer ratio table; targets: issue 5's targets; tables: text and markdown tables;
machine: the machine and tool versions; chart: the gnuplot PNG; markdown_report:
docs/benchmarks.md; cli: the command line scripts/bench.sh calls.
"""
