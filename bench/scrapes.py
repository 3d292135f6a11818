"""Section 3: scrape the exporter and a bare client-library server exposing the same series.

The baseline is `prometheus_client.start_wsgi_server` (the same wsgiref server type) on a
registry holding the exporter's bce_* families as static copies plus the library's live
process, platform and GC collectors, so both render the same series.
"""

from __future__ import annotations

import gzip
import json
import math
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterable
from contextlib import ExitStack

from prometheus_client import CollectorRegistry, start_wsgi_server
from prometheus_client.core import Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.openmetrics.parser import text_string_to_metric_families
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from bench.harness import LOOPBACK, REGIONS, exporter_for, keys, median
from bench.plan import Plan, typical_region
from bench.scraper import HEADERS
from bench.table import Row, at_most, ratio_row, seconds
from exporter.app import Exporter
from exporter.exposition import render
from exporter.simulator import SimulatedAccount, Simulator
from exporter.web import HttpServer, make_app

SECTION = 3
LIVE_PREFIXES = ("process_", "python_")
OPENMETRICS = "application/openmetrics-text; version=1.0.0"
WARM_UP_SCRAPES = 5
READY_TIMEOUT_SECONDS = 60
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


class _Static(Collector):
    """Hand out the same parsed families on every collection."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterable[Metric]:
        """Return the families."""
        return self._families


def run(plan: Plan) -> list[Row]:
    """Serve both, check they agree, then scrape each at every concurrency level."""
    regions = REGIONS[: plan.scrape_regions]
    accounts = keys(plan.scrape_accounts)
    images = {region: typical_region(i) for i, region in enumerate(regions)}
    simulated = [
        SimulatedAccount(k.access_key_id, k.secret_access_key, images=images) for k in accounts
    ]
    with ExitStack() as stack:
        sim = stack.enter_context(Simulator(simulated))
        exporter = exporter_for([(k, r, sim.endpoint) for k in accounts for r in regions])
        stack.callback(exporter.stop)
        _start_and_wait(exporter)
        ours, baseline = _serve(exporter, stack), _serve_baseline(exporter, stack)
        _check_same_series(ours, baseline)
        sim.clear_requests()
        rows = [row for level in plan.scrapers for row in _level(plan, level, ours, baseline)]
        scrapes = len(plan.scrapers) * plan.repeats * plan.scrapes_per_level
        calls = len(sim.requests)
    targets = len(accounts) * len(regions)
    rows.append(
        Row(
            SECTION,
            f"API calls caused by {scrapes:,} scrapes of {targets} targets",
            1,
            str(calls),
            "0",
            None,
            "= 0",
            calls == 0,
        )
    )
    return rows


def _start_and_wait(exporter: Exporter) -> None:
    exporter.start()  # interval mode: every target is refreshed right away, then every 5 m
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while exporter.readiness_problems():
        if time.monotonic() > deadline:
            raise RuntimeError(f"exporter not ready: {exporter.readiness_problems()}")
        time.sleep(0.05)


def _serve(exporter: Exporter, stack: ExitStack) -> str:
    server = HttpServer(make_app(exporter), LOOPBACK, 0)
    server.start()
    stack.callback(server.stop)
    return f"http://{LOOPBACK}:{server.port}/metrics"


def _serve_baseline(exporter: Exporter, stack: ExitStack) -> str:
    text = render(exporter.registry, OPENMETRICS, "")[0].decode()
    static = [family for family in _parse(text) if not family.name.startswith(LIVE_PREFIXES)]
    registry = CollectorRegistry()
    registry.register(_Static(static))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    server, thread = start_wsgi_server(0, addr=LOOPBACK, registry=registry)
    stack.callback(thread.join, 5)
    stack.callback(server.server_close)
    stack.callback(server.shutdown)
    return f"http://{LOOPBACK}:{server.server_address[1]}/metrics"


def _check_same_series(ours: str, baseline: str) -> None:
    mine, theirs = _scrape_once(ours), _scrape_once(baseline)
    if mine != theirs:
        differ = sorted(set(mine.items()) ^ set(theirs.items()))[:5]
        raise RuntimeError(f"the exporter and the baseline expose different series: {differ}")


def _scrape_once(url: str) -> Samples:
    request = urllib.request.Request(url, headers=HEADERS)
    with urllib.request.urlopen(request, timeout=10) as response:
        body = response.read()
        if response.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
    samples: Samples = {}
    for family in _parse(body.decode()):
        if family.name.startswith(LIVE_PREFIXES):
            continue
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def _level(plan: Plan, scrapers: int, ours: str, baseline: str) -> list[Row]:
    for url in (ours, baseline):
        for _ in range(WARM_UP_SCRAPES):
            _scrape_once(url)
    runs: dict[str, list[dict[str, float]]] = {ours: [], baseline: []}
    for repeat in range(plan.repeats):
        for url in (ours, baseline) if repeat % 2 == 0 else (baseline, ours):
            runs[url].append(_measure(url, scrapers, plan.scrapes_per_level))
    rows = []
    for stat, name in (("p50", "p50 latency"), ("p99", "p99 latency")):
        ratio = median(m[stat] / b[stat] for m, b in zip(runs[ours], runs[baseline], strict=True))
        rows.append(
            ratio_row(
                SECTION,
                f"/metrics {name}, {scrapers} concurrent scrapers",
                plan.repeats,
                seconds(median(m[stat] for m in runs[ours])),
                seconds(median(b[stat] for b in runs[baseline])),
                ratio,
                "<= 1.0",
                at_most(1.0),
            )
        )
    ratio = median(m["rate"] / b["rate"] for m, b in zip(runs[ours], runs[baseline], strict=True))
    failed = [sum(m["failed"] for m in runs[url]) for url in (ours, baseline)]
    rows.append(
        ratio_row(
            SECTION,
            f"/metrics throughput, {scrapers} concurrent scrapers",
            plan.repeats,
            f"{median(m['rate'] for m in runs[ours]):.0f}/s, {failed[0]} failed",
            f"{median(b['rate'] for b in runs[baseline]):.0f}/s, {failed[1]} failed",
            ratio,
            ">= 1.0, no more failed",
            lambda value: round(value, 2) >= 1.0 and failed[0] <= failed[1],
        )
    )
    return rows


def _measure(url: str, scrapers: int, scrapes: int) -> dict[str, float]:
    command = [sys.executable, "-m", "bench.scraper", url, str(scrapers), str(scrapes)]
    finished = subprocess.run(command, capture_output=True, text=True, check=True, timeout=600)
    result = json.loads(finished.stdout)
    # A failed scrape (10 s timeout, or an error) counts with the time it took to fail.
    latencies = sorted(result["latencies"])
    return {
        "p50": _percentile(latencies, 0.50),
        "p99": _percentile(latencies, 0.99),
        "rate": (len(latencies) - result["failed"]) / result["elapsed"],
        "failed": result["failed"],
    }


def _percentile(ordered: list[float], fraction: float) -> float:
    # Nearest rank: the smallest value with at least `fraction` of the values at or below it.
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def _parse(text: str) -> list[Metric]:
    """Parse OpenMetrics text into families (the parser is untyped)."""
    families: list[Metric] = list(text_string_to_metric_families(text))  # type: ignore[no-untyped-call]
    return families
