"""Build the image, quota and health metric families from the targets' snapshots.

The families are rebuilt only when a target's snapshot or outcome changed, and handed out as
`FrozenFamilies`, so a scrape between two refreshes reuses their encoded text.
"""

from __future__ import annotations

import platform
import threading
from collections.abc import Iterable, Iterator, Sequence

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from exporter import __version__
from exporter.exposition import (
    FrozenCounterMetricFamily,
    FrozenFamilies,
    FrozenFamily,
    FrozenGaugeMetricFamily,
)
from exporter.targets import Outcome, Snapshot, Target

TARGET_LABELS = ["account", "region"]
INFO_LABELS = ["image_id", "image_name", "image_type", "os_name", "os_version", "status"]

# What a target publishes: its snapshot, its last outcome and when it last succeeded.
_TargetState = tuple[Snapshot | None, Outcome | None, float | None]


class InventoryCollector(Collector):
    """Expose each target's last good counts, its quota and whether its refresh works."""

    def __init__(
        self,
        targets: Sequence[Target],
        labels: Sequence[str],
        interval: float,
        info_types: Sequence[str] = (),
    ) -> None:
        self._targets = targets
        self._labels = list(labels)
        self.interval = interval
        self._per_image = bool(info_types)
        self._lock = threading.Lock()
        self._built_from: list[_TargetState] = []
        self._built: FrozenFamilies | None = None

    def describe(self) -> Iterable[Metric]:
        """Name the families without touching the network or the snapshots."""
        return list(self._families())

    def collect(self) -> Iterable[Metric]:
        """Return the families of the snapshots as they are now, rebuilt only after a change."""
        # Snapshots and outcomes are replaced whole, never edited: identity tells a change.
        states = [(t.snapshot, t.outcome, t.last_success) for t in self._targets]
        with self._lock:
            if self._built is None or not _same(states, self._built_from):
                self._built = FrozenFamilies(self._build(states))
                self._built_from = states
            return self._built.families

    def _build(self, states: list[_TargetState]) -> tuple[FrozenFamily, ...]:
        families = self._families()
        images, quota, up, last_success, duration, interval = families[:6]
        for target, (snapshot, outcome, succeeded_at) in zip(self._targets, states, strict=True):
            key = [target.account, target.region]
            if snapshot is not None:
                for values, count in sorted(snapshot.counts.items()):
                    images.add_metric([*key, *values], count)
            if succeeded_at is not None:
                last_success.add_metric(key, succeeded_at)
            for image_type, limit in sorted(target.quotas.items()):
                quota.add_metric([*key, image_type], limit)
            if outcome is not None:
                up.add_metric(key, 1.0 if outcome.up else 0.0)
                duration.add_metric(key, outcome.duration)
        interval.add_metric([], self.interval)
        if self._per_image:
            _add_per_image(self._targets, states, *families[6:])
        return families

    def _families(self) -> tuple[FrozenFamily, ...]:
        return (
            FrozenGaugeMetricFamily(
                "bce_bcc_images",
                "BCC images in each group at the last successful refresh.",
                labels=[*TARGET_LABELS, *self._labels],
            ),
            FrozenGaugeMetricFamily(
                "bce_bcc_image_quota",
                "Configured limit of images per account and region, by image type.",
                labels=[*TARGET_LABELS, "image_type"],
            ),
            FrozenGaugeMetricFamily(
                "bce_bcc_up",
                "Whether the last refresh of the target succeeded (1) or failed (0).",
                labels=TARGET_LABELS,
            ),
            FrozenGaugeMetricFamily(
                "bce_bcc_last_success_timestamp_seconds",
                "Unix time at which the last successful refresh of the target ended.",
                labels=TARGET_LABELS,
            ),
            FrozenGaugeMetricFamily(
                "bce_bcc_refresh_duration_seconds",
                "Duration of the last refresh of the target, successful or not.",
                labels=TARGET_LABELS,
            ),
            FrozenGaugeMetricFamily(
                "bce_bcc_refresh_interval_seconds",
                "Configured time between refreshes: the interval, or in scrape mode the minimum.",
            ),
            *(_per_image_families() if self._per_image else ()),
        )


def _per_image_families() -> tuple[FrozenFamily, ...]:
    return (
        FrozenGaugeMetricFamily(
            "bce_bcc_image_info",
            "One series per image of the kinds in image_info, with its name, OS and status.",
            labels=[*TARGET_LABELS, *INFO_LABELS],
        ),
        FrozenGaugeMetricFamily(
            "bce_bcc_image_created_timestamp_seconds",
            "Unix time at which the image was created.",
            labels=[*TARGET_LABELS, "image_id"],
        ),
        FrozenCounterMetricFamily(
            "bce_bcc_image_series_dropped",
            "Per-image series left out because a target reached image_info.max_series.",
            labels=TARGET_LABELS,
        ),
    )


def _add_per_image(
    targets: Sequence[Target],
    states: list[_TargetState],
    info: FrozenFamily,
    created: FrozenFamily,
    dropped: FrozenFamily,
) -> None:
    for target, (snapshot, _, _) in zip(targets, states, strict=True):
        key = [target.account, target.region]
        dropped.add_metric(key, target.dropped_total)
        for image in snapshot.images if snapshot is not None else ():
            values = [image.id, image.name, image.image_type, image.os_name, image.os_version]
            info.add_metric([*key, *values, image.status], 1)
            if image.created is not None:
                created.add_metric([*key, image.id], image.created)


def _same(states: list[_TargetState], before: list[_TargetState]) -> bool:
    return len(states) == len(before) and all(
        a is b
        for now, then in zip(states, before, strict=True)
        for a, b in zip(now, then, strict=True)
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
