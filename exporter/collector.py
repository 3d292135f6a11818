"""Build the image, quota and health metric families from the targets' snapshots."""

from __future__ import annotations

import platform
from collections.abc import Iterable, Iterator, Sequence

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from exporter import __version__
from exporter.targets import Target

TARGET_LABELS = ["account", "region"]


class InventoryCollector(Collector):
    """Expose each target's last good counts, its quota and whether its refresh works."""

    def __init__(self, targets: Sequence[Target], labels: Sequence[str], interval: float) -> None:
        self._targets = targets
        self._labels = list(labels)
        self._interval = interval

    def describe(self) -> Iterable[Metric]:
        """Name the families without touching the network or the snapshots."""
        return list(self._families())

    def collect(self) -> Iterable[Metric]:
        """Build fresh families from the snapshots as they are now."""
        images, quota, up, last_success, duration, interval = self._families()
        for target in self._targets:
            key = [target.account, target.region]
            snapshot, outcome = target.snapshot, target.outcome
            if snapshot is not None:
                for values, count in sorted(snapshot.counts.items()):
                    images.add_metric([*key, *values], count)
            if target.last_success is not None:
                last_success.add_metric(key, target.last_success)
            for image_type, limit in sorted(target.quotas.items()):
                quota.add_metric([*key, image_type], limit)
            if outcome is not None:
                up.add_metric(key, 1.0 if outcome.up else 0.0)
                duration.add_metric(key, outcome.duration)
        interval.add_metric([], self._interval)
        yield from (images, quota, up, last_success, duration, interval)

    def _families(self) -> tuple[GaugeMetricFamily, ...]:
        return (
            GaugeMetricFamily(
                "bce_bcc_images",
                "BCC images in each group at the last successful refresh.",
                labels=[*TARGET_LABELS, *self._labels],
            ),
            GaugeMetricFamily(
                "bce_bcc_image_quota",
                "Configured limit of images per account and region, by image type.",
                labels=[*TARGET_LABELS, "image_type"],
            ),
            GaugeMetricFamily(
                "bce_bcc_up",
                "Whether the last refresh of the target succeeded (1) or failed (0).",
                labels=TARGET_LABELS,
            ),
            GaugeMetricFamily(
                "bce_bcc_last_success_timestamp_seconds",
                "Unix time at which the last successful refresh of the target ended.",
                labels=TARGET_LABELS,
            ),
            GaugeMetricFamily(
                "bce_bcc_refresh_duration_seconds",
                "Duration of the last refresh of the target, successful or not.",
                labels=TARGET_LABELS,
            ),
            GaugeMetricFamily(
                "bce_bcc_refresh_interval_seconds",
                "Configured time between refreshes: the interval, or in scrape mode the minimum.",
            ),
        )


class BuildInfoCollector(Collector):
    """Expose the exporter's version and the Python it runs on."""

    def collect(self) -> Iterator[Metric]:
        """Yield the constant build information series."""
        info = GaugeMetricFamily(
            "bce_bcc_exporter_build_info",
            "Version of the exporter and of Python, as labels; the value is always 1.",
            labels=["version", "python_version"],
        )
        info.add_metric([__version__, platform.python_version()], 1)
        yield info
