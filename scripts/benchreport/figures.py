"""Figure lines (docs/workloads.md "Output lines"): parsing, the median over rounds, ordering."""

from __future__ import annotations

import re
from collections import OrderedDict

from .formatting import fmt, human
from .impls import impl_sort_key


WORKLOAD_ORDER = ["L1", "T1", "B1", "C1", "S1", "R1", "I1", "M1"]
LINE_RE = re.compile(r"^([A-Z][A-Z0-9]*)\s+(\S+)\s+(\S+)\s+([-+0-9.eE]+|nan|inf)\s+(\S+)")


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


def sorted_figures(figures) -> list[Figure]:
    def key(f: Figure):
        w = WORKLOAD_ORDER.index(f.workload) if f.workload in WORKLOAD_ORDER else 99
        return (w, f.workload, impl_sort_key(f.impl), f.name)
    return sorted(figures.values(), key=key)
