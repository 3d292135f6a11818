"""Decide when targets are refreshed: on a jittered interval, or on scrape with sharing."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait

from exporter.settings import RefreshConfig
from exporter.targets import Target

# Time kept back from Prometheus's scrape timeout to render and send the response.
SCRAPE_TIMEOUT_MARGIN = 0.5
WAIT_SLICE_SECONDS = 0.1

log = logging.getLogger(__name__)


class Scheduler:
    """Run target refreshes in bounded pools, in `interval` or `scrape` mode."""

    def __init__(self, targets: Sequence[Target], refresh: RefreshConfig) -> None:
        self.targets = list(targets)
        self.refresh = refresh
        filters = max((len(t.image_types) for t in self.targets), default=1)
        self._target_pool = ThreadPoolExecutor(
            max_workers=max(1, min(len(self.targets), refresh.concurrency)),
            thread_name_prefix="refresh",
        )
        self._filter_pool = ThreadPoolExecutor(
            max_workers=max(1, refresh.concurrency * filters), thread_name_prefix="list"
        )
        self._in_flight: dict[int, Future[None]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the background loop in `interval` mode; `scrape` mode needs no thread."""
        if self.refresh.mode == "interval":
            self._thread = threading.Thread(target=self._run, name="scheduler", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop scheduling and abandon refreshes in flight without waiting for them."""
        with self._lock:
            self._stop.set()
        self._target_pool.shutdown(wait=False, cancel_futures=True)
        self._filter_pool.shutdown(wait=False, cancel_futures=True)
        for target in self.targets:
            target.client.retire()

    def refresh_due(
        self, scrape_timeout: float | None, targets: Sequence[Target] | None = None
    ) -> None:
        """Refresh for a scrape each target older than `min_interval`, joining refreshes in flight.

        Waits at most for the smaller of `refresh.timeout` and the scrape timeout less a margin.
        """
        budget = self.refresh.timeout
        if scrape_timeout is not None:
            budget = min(budget, max(0.0, scrape_timeout - SCRAPE_TIMEOUT_MARGIN))
        deadline = time.monotonic() + budget
        now = time.time()
        chosen = self.targets if targets is None else targets
        due = [t for t in chosen if _age(t, now) >= self.refresh.min_interval]
        futures = [self.submit(target, deadline) for target in due]
        # Wait in slices: a stop (a reload) cancels queued refreshes without waking `wait`.
        while futures and not self._stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            futures = list(wait(futures, timeout=min(remaining, WAIT_SLICE_SECONDS)).not_done)

    def submit(self, target: Target, deadline: float) -> Future[None]:
        """Start a refresh of `target`, or return the one already in flight.

        After `stop` (a reload raced with a scrape) it returns a finished future instead.
        """
        with self._lock:
            if self._stop.is_set():
                finished: Future[None] = Future()
                finished.set_result(None)
                return finished
            running = self._in_flight.get(id(target))
            if running is not None and not running.done():
                return running
            future = self._target_pool.submit(self._refresh, target, deadline)
            self._in_flight[id(target)] = future
            return future

    def expire(self) -> None:
        """Drop snapshots older than `max_staleness`; called before each collection."""
        now = time.time()
        for target in self.targets:
            target.drop_if_older(self.refresh.max_staleness, now)

    def _refresh(self, target: Target, deadline: float) -> None:
        target.refresh(deadline, self._filter_pool)

    def _run(self) -> None:
        # Each target keeps its own jittered schedule. The first refresh runs right away,
        # except for a target that kept its data through a reload: it stays on schedule.
        next_due = {id(t): time.monotonic() + self._first_delay(t) for t in self.targets}
        while not self._stop.is_set():
            now = time.monotonic()
            for target in self.targets:
                if next_due[id(target)] <= now:
                    self.submit(target, now + self.refresh.timeout)
                    next_due[id(target)] = now + self._jittered(self.refresh.interval)
            self._stop.wait(max(0.05, min(next_due.values()) - time.monotonic()))

    def _first_delay(self, target: Target) -> float:
        if target.outcome is None or target.snapshot is None:
            return 0.0
        return max(0.0, self.refresh.interval - (time.time() - target.outcome.finished_at))

    def _jittered(self, seconds: float) -> float:
        return seconds * (1 + random.uniform(-self.refresh.jitter, self.refresh.jitter))


def _age(target: Target, now: float) -> float:
    outcome = target.outcome
    return float("inf") if outcome is None else now - outcome.finished_at
