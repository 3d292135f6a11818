"""Count BCC API requests, errors and latency in the exporter's own registry."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import Metric

OPERATION = "ListImages"
# Latency buckets for one page of ListImages: tens of milliseconds to the read timeout.
LATENCY_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class ApiMetrics:
    """Own the request, error and latency families shared by every BCC client."""

    def __init__(self, registry: CollectorRegistry) -> None:
        target = ["account", "region", "operation"]
        self.requests = Counter(
            "bce_bcc_api_requests",
            "BCC API requests sent, each page and each retry.",
            target,
            registry=registry,
        )
        self.errors = Counter(
            "bce_bcc_api_errors",
            "Failed BCC API requests by BCE error code, or timeout, connection, "
            "invalid_response or http_<status>.",
            [*target, "code"],
            registry=registry,
        )
        self.latency = Histogram(
            "bce_bcc_api_request_duration_seconds",
            "Latency of BCC API requests, from sending to reading the whole body.",
            target,
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.clock_skew = Gauge(
            "bce_bcc_clock_skew_seconds",
            "BCC API clock minus the local clock, from the last response's Date header.",
            ["account", "region"],
            registry=registry,
        )
        self._codes: dict[tuple[str, str], set[str]] = {}

    def start_target(self, account: str, region: str) -> None:
        """Create a target's series at zero so rates work from the first failure."""
        self.requests.labels(account, region, OPERATION)
        self.latency.labels(account, region, OPERATION)

    def forget_target(self, account: str, region: str) -> None:
        """Remove a target's series once a reload dropped the target."""
        for family in (self.requests, self.latency):
            with contextlib.suppress(KeyError):
                family.remove(account, region, OPERATION)
        with contextlib.suppress(KeyError):
            self.clock_skew.remove(account, region)
        for code in self._codes.pop((account, region), set()):
            with contextlib.suppress(KeyError):
                self.errors.remove(account, region, OPERATION, code)

    def collect_target(self, account: str, region: str) -> Iterator[Metric]:
        """Yield this object's families holding only one target's samples, for /probe."""
        for family in (self.requests, self.errors, self.latency, self.clock_skew):
            for metric in family.collect():
                samples = [
                    sample
                    for sample in metric.samples
                    if sample.labels.get("account") == account
                    and sample.labels.get("region") == region
                ]
                kept = Metric(metric.name, metric.documentation, metric.type, metric.unit)
                kept.samples = samples
                yield kept

    def observe(self, account: str, region: str, seconds: float, code: str | None) -> None:
        """Record one request: its latency and, when it failed, its error code."""
        self.requests.labels(account, region, OPERATION).inc()
        self.latency.labels(account, region, OPERATION).observe(seconds)
        if code is not None:
            self.errors.labels(account, region, OPERATION, code).inc()
            self._codes.setdefault((account, region), set()).add(code)
