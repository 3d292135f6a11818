"""Refresh one (account, region) target and keep its last good snapshot."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from concurrent.futures import Executor, Future
from dataclasses import dataclass

from exporter.client import BccClient
from exporter.errors import ApiError
from exporter.inventory import ImageRecord, Tally
from exporter.settings import ImageInfoConfig

NO_IMAGE_INFO = ImageInfoConfig()

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Snapshot:
    """Hold the counts of one successful refresh; replaced whole, never edited."""

    counts: Mapping[tuple[str, ...], int]
    finished_at: float
    duration: float
    images: tuple[ImageRecord, ...] = ()


@dataclass(frozen=True)
class Outcome:
    """Describe the last refresh attempt of a target, successful or not."""

    up: bool
    finished_at: float
    duration: float
    error: str | None = None


class Target:
    """Own one target's client, its last good snapshot and its last outcome."""

    def __init__(
        self,
        client: BccClient,
        image_types: tuple[str, ...],
        labels: tuple[str, ...],
        owners: dict[str, str],
        quotas: Mapping[str, int],
        info: ImageInfoConfig = NO_IMAGE_INFO,
    ) -> None:
        self.client = client
        self.account, self.region = client.account, client.region
        self.image_types = image_types
        self.labels = labels
        self.quotas = dict(quotas)
        self.snapshot: Snapshot | None = None
        self.outcome: Outcome | None = None
        self.last_success: float | None = None
        self.info = info
        self.dropped_total = 0
        self._owners = owners
        self._lock = threading.Lock()

    def refresh(self, deadline: float, pool: Executor) -> None:
        """List every filter concurrently, then publish the counts all at once or not at all.

        The one broad `except` of the exporter lives here: whatever fails, the target is
        marked down, the error is logged once, and the last good snapshot stays.
        """
        started = time.monotonic()
        tally = Tally(self.labels, self._owners, self.info.image_types, self.info.max_series)
        failed = threading.Event()
        futures: list[Future[None]] = []
        try:
            for image_type in self.image_types:
                futures.append(pool.submit(self._list_filter, image_type, deadline, tally, failed))
            for future in futures:
                future.result()
        except Exception as err:  # noqa: BLE001 - the refresh boundary, see the docstring
            failed.set()
            for future in futures:
                future.cancel()
            if self.client.retired:
                # A reload or a stop let go of this target: its failure concerns no one.
                log.debug("abandoned the refresh of a retired target", extra=self._fields())
                return
            self._fail(err, time.monotonic() - started)
            return
        duration = time.monotonic() - started
        with self._lock:
            now = time.time()
            self.snapshot = Snapshot(dict(tally.counts), now, duration, tuple(tally.records))
            self.dropped_total += tally.dropped
            self.outcome = Outcome(True, now, duration)
            self.last_success = now
        if tally.dropped:
            log.warning(
                "per-image series over the cap were dropped",
                extra={**self._fields(), "dropped": tally.dropped, "cap": self.info.max_series},
            )
        log.debug(
            "refreshed target",
            extra={
                **self._fields(),
                "images": tally.total,
                "groups": len(tally.counts),
                "duration_seconds": round(duration, 3),
            },
        )

    def adopt(self, earlier: Target | None) -> None:
        """Take over the data of the same target from before a reload, when still comparable."""
        if earlier is None:
            return
        with earlier._lock:
            self.dropped_total = earlier.dropped_total
            comparable = (earlier.labels, earlier.image_types, earlier.info)
            if comparable != (self.labels, self.image_types, self.info):
                return  # counts of another shape: refresh at once instead
            self.outcome, self.last_success = earlier.outcome, earlier.last_success
            self.snapshot = earlier.snapshot

    def drop_if_older(self, max_age: float, now: float) -> None:
        """Forget the snapshot once it is older than `max_age` seconds."""
        with self._lock:
            if self.snapshot is not None and now - self.snapshot.finished_at > max_age:
                log.warning(
                    "dropping data older than max_staleness",
                    extra={
                        **self._fields(),
                        "age_seconds": round(now - self.snapshot.finished_at),
                    },
                )
                self.snapshot = None

    def _list_filter(
        self, image_type: str, deadline: float, tally: Tally, failed: threading.Event
    ) -> None:
        # Each page is counted as it arrives, so memory holds one page per filter at most;
        # once another filter has failed, the rest of this listing would be wasted calls.
        for page in self.client.list_pages(image_type, deadline):
            if failed.is_set():
                return
            tally.add_page(page, image_type)

    def _fields(self) -> dict[str, str]:
        return {"account": self.account, "region": self.region}

    def _fail(self, err: Exception, duration: float) -> None:
        with self._lock:
            self.outcome = Outcome(False, time.time(), duration, str(err))
        if isinstance(err, ApiError):
            log.warning(
                "refresh failed", extra={**self._fields(), "code": err.code, "error": str(err)}
            )
        else:
            log.error("refresh failed unexpectedly", extra=self._fields(), exc_info=err)
