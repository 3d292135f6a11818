"""Shared fixtures: a simulated BCC API on loopback and exporters pointed at it."""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from exporter.app import Exporter
from exporter.config import parse_config
from exporter.inventory import FILTER_COVERS, LABEL_FIELDS, MISSING_VALUE
from exporter.settings import Config
from exporter.simulator import SimulatedAccount, Simulator

AK = "0123456789abcdef0123456789abcdef"
SK = "fedcba9876543210fedcba9876543210"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture
def simulator() -> Iterator[Simulator]:
    """Serve two regions: bj with several pages of images, gz with a handful."""
    account = SimulatedAccount(
        AK,
        SK,
        images={
            "bj": {"System": 30, "Custom": 17, "Integration": 2, "Sharing": 3, "GpuBccCustom": 1},
            "gz": {"System": 5, "Custom": 3},
        },
    )
    with Simulator([account], seed=7) as sim:
        yield sim


def make_config(sim: Simulator, regions: list[str], **overrides: Any) -> Config:
    """Return a config for the simulator's account; keyword arguments replace top-level keys."""
    account = {
        "name": "test",
        "access_key_id": AK,
        "secret_access_key": SK,
        "regions": regions,
        "endpoint": sim.endpoint,
    }
    data: dict[str, Any] = {
        "accounts": [account],
        "http": {"initial_backoff": "10ms", "max_backoff": "50ms"},
        **overrides,
    }
    return parse_config(data, environ={})


def refresh_all(exporter: Exporter, timeout: float = 10.0) -> None:
    """Refresh every target once, the way the scheduler does, and wait for the results."""
    futures = [
        exporter.scheduler.submit(target, time.monotonic() + timeout)
        for target in exporter.targets
    ]
    for future in futures:
        future.result(timeout=timeout + 5)


def scrape(exporter: Exporter) -> Samples:
    """Render the registry as Prometheus would read it and index the samples."""
    exporter.before_scrape(None)
    text = generate_latest(exporter.registry).decode()
    return parse_samples(text)


def parse_samples(text: str) -> Samples:
    """Index exposition text by (sample name, sorted labels)."""
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def image_counts(samples: Samples, region: str) -> Counter[tuple[tuple[str, str], ...]]:
    """Return bce_bcc_images of one region keyed by their labels other than account/region."""
    counts: Counter[tuple[tuple[str, str], ...]] = Counter()
    for (name, labels), value in samples.items():
        label_map = dict(labels)
        if name == "bce_bcc_images" and label_map["region"] == region:
            rest = tuple((k, v) for k, v in labels if k not in ("account", "region"))
            counts[rest] = int(value)
    return counts


def expected_counts(
    sim: Simulator, region: str, config: Config
) -> Counter[tuple[tuple[str, str], ...]]:
    """Count the simulator's dataset the way the exporter should, independently of its code."""
    kinds = {kind for name in config.image_types for kind in FILTER_COVERS.get(name, (name,))}
    counts: Counter[tuple[tuple[str, str], ...]] = Counter()
    for image in sim.images(AK, region):
        if image.get("type") not in kinds:
            continue
        values = []
        for label in sorted(config.labels):
            value = image.get(LABEL_FIELDS[label])
            values.append((label, MISSING_VALUE if value in (None, "") else str(value)))
        counts[tuple(values)] += 1
    return counts


def value(samples: Samples, name: str, **labels: str) -> float | None:
    """Return one sample's value, or None when the series is absent."""
    return samples.get((name, tuple(sorted(labels.items()))))


def minimum_calls(n: int, page_size: int) -> int:
    """Return the fewest ListImages calls that can list n images: at least one."""
    return max(1, math.ceil(n / page_size))
