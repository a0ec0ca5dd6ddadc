"""How the report writes numbers: significant digits, short human forms, thousands separators."""

from __future__ import annotations

import math


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
