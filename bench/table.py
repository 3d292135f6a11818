"""Hold the benchmark's rows and print them as one Markdown table."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

HEADER = ("#", "measurement", "runs", "figure", "baseline", "ratio", "target", "met")


@dataclass(frozen=True)
class Row:
    """Describe one measurement: its figure, its baseline, their ratio and the target."""

    section: int
    name: str
    runs: int
    figure: str
    baseline: str
    ratio: float | None
    target: str
    met: bool

    def cells(self) -> tuple[str, ...]:
        """Return the row's cells as printed."""
        ratio = "n/a" if self.ratio is None else _ratio(self.ratio)
        met = "yes" if self.met else "**no**"
        return (
            str(self.section),
            self.name,
            str(self.runs),
            self.figure,
            self.baseline,
            ratio,
            self.target,
            met,
        )


def at_most(limit: float) -> Callable[[float], bool]:
    """Return a check that a ratio is at most `limit`, read at the printed precision."""
    return lambda ratio: round(ratio, 2) <= limit


def ratio_row(
    section: int,
    name: str,
    runs: int,
    figure: str,
    baseline: str,
    ratio: float,
    target: str,
    check: Callable[[float], bool],
) -> Row:
    """Build a row whose target is a bound on the ratio."""
    return Row(section, name, runs, figure, baseline, ratio, target, check(ratio))


def format_table(rows: Sequence[Row]) -> str:
    """Return the rows as a Markdown table with aligned columns."""
    lines = [HEADER, *(row.cells() for row in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(HEADER))]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(HEADER), rule, *(line(row.cells()) for row in rows)])


def seconds(value: float) -> str:
    """Format a duration with a unit that keeps three significant digits."""
    if value >= 1:
        return f"{value:.2f} s"
    if value >= 0.001:
        return f"{value * 1000:.3g} ms"
    return f"{value * 1_000_000:.3g} µs"


def mebibytes(kib: float) -> str:
    """Format KiB as MiB."""
    return f"{kib / 1024:.1f} MiB"


def _ratio(value: float) -> str:
    if math.isinf(value):
        return "inf"
    return f"{value:.2f}"
