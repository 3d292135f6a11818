"""Run the benchmark (`python -m bench`) and print one table of ratios against baselines.

`--quick` runs every row on tiny datasets once, for the smoke test; the full run takes a
few minutes on two cores.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from bench import calls, cpu, memory, scrapes, sdk, walltime
from bench.plan import Plan, full_plan, quick_plan
from bench.table import Row, format_table

DEFAULT_REPEATS = 3
SECTIONS: dict[str, Callable[[Plan], list[Row]]] = {
    "calls": calls.run,
    "walltime": walltime.run,
    "scrapes": scrapes.run,
    "cpu": cpu.run,
    "memory": memory.run,
    "sdk": sdk.run,
}
CPUINFO = Path("/proc/cpuinfo")


def main(argv: list[str] | None = None) -> int:
    """Run the chosen sections, print the table; exit 1 when a target is missed."""
    options = _parser().parse_args(argv)
    plan = quick_plan() if options.quick else full_plan(options.repeats)
    # The exporter's warnings would only interleave with the table.
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
    started = time.monotonic()
    print(_machine(plan), flush=True)
    rows: list[Row] = []
    for name in options.only or list(SECTIONS):
        section_started = time.monotonic()
        rows.extend(SECTIONS[name](plan))
        elapsed = time.monotonic() - section_started
        print(f"section {name}: {elapsed:.0f} s", file=sys.stderr, flush=True)
    print()
    print(format_table(rows))
    missed = [row for row in rows if not row.met]
    print()
    elapsed = time.monotonic() - started
    print(f"{len(rows) - len(missed)} of {len(rows)} targets met in {elapsed:.0f} s")
    return 1 if missed and options.strict else 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny datasets, one run each")
    parser.add_argument(
        "--repeats",
        type=int,
        default=DEFAULT_REPEATS,
        help=f"runs per measurement; figures are medians (default {DEFAULT_REPEATS})",
    )
    parser.add_argument(
        "--only", action="append", choices=list(SECTIONS), help="run only this section"
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    return parser


def _machine(plan: Plan) -> str:
    mode = "quick (tiny datasets)" if plan.quick else "full"
    return (
        f"bcc-image-exporter benchmark, {mode}, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC\n"
        f"machine: {os.cpu_count()} CPUs, {_cpu_model()}, Python {platform.python_version()}, "
        f"load average {os.getloadavg()[0]:.2f} at start"
    )


def _cpu_model() -> str:
    try:
        for line in CPUINFO.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


if __name__ == "__main__":
    sys.exit(main())
