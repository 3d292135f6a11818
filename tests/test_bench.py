"""Run the quick benchmark so it cannot rot, and check the exposition rendered once per refresh."""

from __future__ import annotations

import gzip
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from exporter.app import Exporter
from exporter.exposition import render
from exporter.simulator import Simulator
from tests.conftest import AK, make_config, parse_samples, refresh_all

REPO = Path(__file__).resolve().parents[1]
OPENMETRICS = "application/openmetrics-text; version=1.0.0"
LIVE_PREFIXES = ("process_", "python_gc_")
SCRAPE_ROWS = [
    f"/metrics {what}, {n} concurrent scrapers"
    for n in (1, 10, 50)
    for what in ("p50 latency", "p99 latency", "throughput")
]
SDK_ROWS = [
    rf"refresh {what} vs SDK loop, {dataset}, {scheme}$"
    for scheme in ("HTTP", "HTTPS")
    for dataset in (r"1 region, [\d,]+ images", r"2 accounts x 2 regions, [\d,]+ images each")
    for what in ("wall time", "CPU time")
]
# (section, pattern of the measurement) for every row of the quick run, in order.
EXPECTED_ROWS = [
    *((1, rf"API calls per refresh, {n} images?, page size 10$") for n in (0, 1, 9, 10, 11)),
    (1, r"API calls per refresh, 1,000 images, page size 10$"),
    (2, r"simulator: 48 concurrent requests, 50 ms each$"),
    (2, r"refresh wall time, 1 target, [\d,]+ images, \+50 ms per request$"),
    (2, r"refresh wall time, 3 accounts x 2 regions, [\d,]+ images, \+50 ms per request$"),
    *((3, re.escape(name) + "$") for name in SCRAPE_ROWS),
    (3, r"API calls caused by [\d,]+ scrapes of 4 targets$"),
    (4, r"CPU per 1,000 images \(fetch, parse, count\), 200 images in 1 pages?$"),
    *(
        (5, rf"peak resident memory, {n} images in one target \([+-][\d.]+ MiB\)$")
        for n in (100, 200, 400, 800)
    ),
    *((6, pattern) for pattern in SDK_ROWS),
]


def test_quick_benchmark_prints_every_row_and_exact_api_calls() -> None:
    finished = subprocess.run(
        [sys.executable, "-m", "bench", "--quick"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr[-3000:]

    rows = [
        [cell.strip() for cell in line.strip("|").split("|")]
        for line in finished.stdout.splitlines()
        if re.match(r"\| \d ", line)
    ]
    assert len(rows) == len(EXPECTED_ROWS), finished.stdout
    for row, (section, pattern) in zip(rows, EXPECTED_ROWS, strict=True):
        assert row[0] == str(section) and re.match(pattern, row[1]), row
    for number, name, _runs, figure, baseline, ratio, _target, met in rows:
        if number == "1":
            assert (ratio, met) == ("1.00", "yes") and figure == baseline, name
        if name.startswith("API calls caused by"):
            assert (figure, met) == ("0", "yes")


# --- the exposition rendered once per refresh ---------------------------------------------


def bce_samples(body: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Parse an exposition and keep the series that do not move between two renders."""
    samples = parse_samples(body.decode())
    return {key: value for key, value in samples.items() if not key[0].startswith(LIVE_PREFIXES)}


@pytest.fixture
def exporter(simulator: Simulator) -> Iterator[Exporter]:
    """Return an exporter refreshed once against the two-region simulator."""
    exporter = Exporter(make_config(simulator, ["bj", "gz"]))
    refresh_all(exporter)
    yield exporter
    exporter.stop()


@pytest.mark.parametrize("accept", ["", "text/plain; version=0.0.4", OPENMETRICS])
@pytest.mark.parametrize("encoding", ["", "gzip"])
def test_render_matches_the_client_library_in_every_format(
    exporter: Exporter, accept: str, encoding: str
) -> None:
    fresh = generate_latest(exporter.registry)
    for _ in range(2):  # the second render comes from the cache
        body, headers = render(exporter.registry, accept, encoding)
        if encoding:
            assert ("Content-Encoding", "gzip") in headers
            body = gzip.decompress(body)
        if accept == OPENMETRICS:
            assert body.endswith(b"# EOF\n") and body.count(b"# EOF") == 1
            body = body.removesuffix(b"# EOF\n")
        assert bce_samples(body) == bce_samples(fresh)


def test_render_follows_a_refresh_that_changed_the_counts(
    exporter: Exporter, simulator: Simulator
) -> None:
    before = bce_samples(render(exporter.registry, "", "")[0])
    simulator.set_images(AK, "gz", {"Custom": 9})
    refresh_all(exporter)
    after = bce_samples(gzip.decompress(render(exporter.registry, "", "gzip")[0]))

    assert after != before
    assert after == bce_samples(generate_latest(exporter.registry))


def test_cached_families_are_rebuilt_only_after_a_change(exporter: Exporter) -> None:
    first = list(exporter.inventory.collect())
    second = list(exporter.inventory.collect())
    refresh_all(exporter)
    third = list(exporter.inventory.collect())

    assert all(a is b for a, b in zip(first, second, strict=True))
    assert not any(a is c for a, c in zip(first, third, strict=True))
