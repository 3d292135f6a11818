"""Section 2: time refreshes against a simulator that adds latency, against the lower bound.

The bound is the larger of the longest chain of dependent pages times the latency, and every
request times the latency divided by the requests the configuration lets be in flight
(targets refreshed at once times filters per target).
"""

from __future__ import annotations

import math
import threading
from http.client import HTTPConnection
from urllib.parse import urlsplit

from bench.harness import (
    REGIONS,
    exporter_for,
    filter_sizes,
    keys,
    median,
    minimum_calls,
    refresh,
    run_together,
)
from bench.plan import Counts, Plan, large_region, typical_region
from bench.simhost import Account, RemoteSimulators, ServerSpec
from bench.table import Row, at_most, ratio_row, seconds
from exporter.settings import DEFAULT_IMAGE_TYPES, RefreshConfig

SECTION = 2
TARGET = 1.2
MANY_ACCOUNTS = 3
PAGE_SIZE = 1000
SINGLE_REGION = "nj"
# Sleeps that overlap finish in about one latency; serialized ones would take one per request.
OVERLAP_LIMIT = 2


def run(plan: Plan) -> list[Row]:
    """Check the simulator's sleeps overlap, then time one target and many targets."""
    single = large_region(plan.wall_single)
    many = {region: typical_region(i) for i, region in enumerate(REGIONS)}
    if plan.quick:
        many = {region: counts for region, counts in list(many.items())[:2]}
    accounts = [
        Account(k.access_key_id, k.secret_access_key, {**many, SINGLE_REGION: single})
        for k in keys(MANY_ACCOUNTS)
    ]
    with RemoteSimulators([ServerSpec(accounts, latency=plan.latency)]) as remote:
        (url,) = remote.urls
        rows = [_overlap_check(plan, url)]
        rows.append(_timed(plan, url, {(0, SINGLE_REGION): single}, "1 target"))
        targets = {(i, r): c for i in range(MANY_ACCOUNTS) for r, c in many.items()}
        name = f"{MANY_ACCOUNTS} accounts x {len(many)} regions"
        rows.append(_timed(plan, url, targets, name))
    return rows


def _overlap_check(plan: Plan, url: str) -> Row:
    # As many requests at once as the exporter sends for many targets; each only sleeps.
    parallel = RefreshConfig().concurrency * len(DEFAULT_IMAGE_TYPES)
    walls = []
    for _ in range(plan.repeats):
        walls.append(_concurrent_gets(url, parallel))
    wall = median(walls)
    return ratio_row(
        SECTION,
        f"simulator: {parallel} concurrent requests, {plan.latency * 1000:g} ms each",
        plan.repeats,
        seconds(wall),
        seconds(plan.latency),
        wall / plan.latency,
        f"< {OVERLAP_LIMIT} (serial: {parallel})",
        lambda ratio: ratio < OVERLAP_LIMIT,
    )


def _concurrent_gets(url: str, count: int) -> float:
    netloc = urlsplit(url).netloc

    def get(barrier: threading.Barrier) -> None:
        connection = HTTPConnection(netloc, timeout=10)
        connection.connect()
        barrier.wait()
        connection.request("GET", "/bj/v2/image")  # unsigned: the latency comes first
        connection.getresponse().read()
        connection.close()

    return run_together([get] * count)


def _timed(plan: Plan, url: str, targets: dict[tuple[int, str], Counts], name: str) -> Row:
    key_of = keys(MANY_ACCOUNTS)
    exporter = exporter_for(
        [(key_of[i], region, f"{url}/{region}") for i, region in targets], page_size=PAGE_SIZE
    )
    try:
        refresh(exporter)  # warm up: connections, first-use costs
        walls = [refresh(exporter) for _ in range(plan.repeats)]
    finally:
        exporter.stop()
    wall, bound = median(walls), _bound(plan, list(targets.values()))
    images = sum(sum(counts.values()) for counts in targets.values())
    return ratio_row(
        SECTION,
        f"refresh wall time, {name}, {images:,} images, +{plan.latency * 1000:g} ms per request",
        plan.repeats,
        seconds(wall),
        seconds(bound),
        wall / bound,
        f"<= {TARGET}",
        at_most(TARGET),
    )


def _bound(plan: Plan, regions: list[Counts]) -> float:
    sizes = [filter_sizes(counts, DEFAULT_IMAGE_TYPES) for counts in regions]
    chain = max(max(1, math.ceil(n / PAGE_SIZE)) for region in sizes for n in region)
    total = sum(minimum_calls(region, PAGE_SIZE) for region in sizes)
    in_flight = min(len(regions), RefreshConfig().concurrency) * len(DEFAULT_IMAGE_TYPES)
    return max(chain * plan.latency, total * plan.latency / in_flight)
