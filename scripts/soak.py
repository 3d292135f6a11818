"""Soak the exporter: many refreshes and scrapes against the simulator with faults toggled.

Prints resident memory, threads and open file descriptors at the start and the end.
`python scripts/soak.py` (300 refreshes, 5,000 scrapes) is the long run; tests run a short one.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import requests

from exporter.app import Exporter
from exporter.config import parse_config
from exporter.settings import Config
from exporter.simulator import Fault, SimulatedAccount, Simulator
from exporter.web import HttpServer, make_app

AK, SK = "50a450a450a450a450a450a450a450a4", "50a4secret50a4secret50a4secret00"
REGIONS = ("bj", "gz", "su")
# Faults switched on in turn, one refresh in every few, in region gz.
FAULTS = (
    Fault("reset", region="gz", page=1),
    Fault("error", status=503, code="ServiceUnavailable", region="gz"),
    Fault("throttle", region="gz", retry_after=0.01),
    Fault("truncated", region="gz"),
    Fault("slow_body", region="gz", delay=1.0),
    Fault("html", status=502, region="gz"),
)


@dataclass(frozen=True)
class Usage:
    """Hold one reading of the process's resources."""

    rss_bytes: int
    threads: int
    fds: int

    def __str__(self) -> str:
        return f"rss={self.rss_bytes / 2**20:.1f} MiB threads={self.threads} fds={self.fds}"


def usage() -> Usage:
    """Read resident memory, thread count and open descriptors from /proc."""
    status = Path("/proc/self/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    rss = int(fields["VmRSS"].split()[0]) * 1024
    return Usage(rss, int(fields["Threads"]), len(os.listdir("/proc/self/fd")))


def soak(
    refreshes: int, scrapes: int, settle_seconds: float = 5.0, every: int = 0
) -> tuple[Usage, Usage]:
    """Run the soak and return the usage after warm-up and at the end."""
    account = SimulatedAccount(AK, SK, images={r: {"System": 1200, "Custom": 9} for r in REGIONS})
    with Simulator([account]) as sim:
        exporter = Exporter(_config(sim))
        server = HttpServer(make_app(exporter), "127.0.0.1", 0)
        server.start()
        url = f"http://127.0.0.1:{server.port}/metrics"
        try:
            # One pass over every fault first: the bounded pools grow to their working size.
            _cycle(exporter, sim, url, len(FAULTS) + 1, 20)
            start = usage()
            _cycle(exporter, sim, url, refreshes, max(1, scrapes // max(1, refreshes)), every)
            sim.clear_faults()
            _refresh(exporter)
            end = _settled(start, settle_seconds)
        finally:
            server.stop()
            exporter.stop()
    return start, end


def _cycle(
    exporter: Exporter, sim: Simulator, url: str, refreshes: int, scrapes: int, every: int = 0
) -> None:
    cycle = itertools.cycle((None, *FAULTS))
    for done, fault in enumerate(itertools.islice(cycle, refreshes), start=1):
        # The simulator shares this process; its request log would otherwise grow here.
        sim.clear_requests()
        sim.clear_faults()
        if fault is not None:
            sim.add_fault(fault)
        _refresh(exporter)
        _scrape(url, scrapes)
        if every and done % every == 0:
            print(f"after {done:>5} refreshes: {usage()}", flush=True)


def _config(sim: Simulator) -> Config:
    data = {
        "accounts": [
            {
                "name": "soak",
                "access_key_id": AK,
                "secret_access_key": SK,
                "regions": list(REGIONS),
                "endpoint": sim.endpoint,
            }
        ],
        "http": {"max_attempts": 2, "initial_backoff": "5ms", "read_timeout": "500ms"},
        "refresh": {"timeout": "2s"},
        "image_types": ["All", "Sharing"],
    }
    return parse_config(data, environ={})


def _refresh(exporter: Exporter) -> None:
    deadline = time.monotonic() + exporter.config.refresh.timeout
    for future in [exporter.scheduler.submit(t, deadline) for t in exporter.targets]:
        future.result(timeout=30)


def _scrape(url: str, count: int) -> None:
    def one(_: int) -> int:
        return requests.get(url, timeout=10).status_code

    with ThreadPoolExecutor(max_workers=4) as pool:
        statuses = list(pool.map(one, range(count)))
    if any(status != 200 for status in statuses):
        raise RuntimeError(f"a scrape failed: {sorted(set(statuses))}")


def _settled(start: Usage, seconds: float) -> Usage:
    # Handler threads of the last scrapes and closed connections take a moment to go away.
    deadline = time.monotonic() + seconds
    current = usage()
    while time.monotonic() < deadline and (
        current.threads > start.threads or current.fds > start.fds
    ):
        time.sleep(0.1)
        current = usage()
    return current


def main() -> int:
    """Run the soak from the command line and print the two readings."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--refreshes", type=int, default=300)
    parser.add_argument("--scrapes", type=int, default=5000)
    parser.add_argument("--every", type=int, default=0, help="print a reading every N refreshes")
    options = parser.parse_args()
    started = time.monotonic()
    start, end = soak(options.refreshes, options.scrapes, every=options.every)
    print(f"start: {start}")
    print(f"end:   {end}")
    print(
        f"{options.refreshes} refreshes, {options.scrapes} scrapes in "
        f"{time.monotonic() - started:.0f}s; threads alive: {threading.active_count()}"
    )
    return 0 if end.threads <= start.threads and end.fds <= start.fds else 1


if __name__ == "__main__":
    sys.exit(main())
