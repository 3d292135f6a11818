"""Wire configuration, clients, targets, scheduler and registry into one exporter."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from prometheus_client import CollectorRegistry, disable_created_metrics
from prometheus_client.core import Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from exporter.apimetrics import ApiMetrics
from exporter.client import BccClient
from exporter.collector import BuildInfoCollector, InventoryCollector
from exporter.config import load_config
from exporter.errors import ConfigError
from exporter.inventory import owner_filters
from exporter.scheduler import Scheduler
from exporter.settings import AccountConfig, Config
from exporter.signer import Credentials
from exporter.targets import Target

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Runtime:
    """Everything built from one configuration; replaced whole on reload."""

    config: Config
    scheduler: Scheduler
    collector: InventoryCollector


class Exporter:
    """Own the registry and the targets; the HTTP layer asks it for metrics and readiness."""

    def __init__(
        self,
        config: Config,
        config_file: str | Path | None = None,
        *,
        process_metrics: bool = True,
    ) -> None:
        """Build the targets; `process_metrics=False` leaves out the process and Python series."""
        # `_created` series only add noise to counters that live as long as the process.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry()
        self._config_file = config_file
        self._api_metrics = ApiMetrics(self.registry)
        self._runtime = self._build(config, previous=[])
        self._reload_lock = threading.Lock()
        self._started = False
        self.registry.register(_CurrentInventory(self))
        self.registry.register(BuildInfoCollector())
        if process_metrics:
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
            GCCollector(registry=self.registry)

    @property
    def config(self) -> Config:
        """Return the configuration in force."""
        return self._runtime.config

    @property
    def scheduler(self) -> Scheduler:
        """Return the scheduler of the configuration in force."""
        return self._runtime.scheduler

    @property
    def inventory(self) -> InventoryCollector:
        """Return the inventory collector of the configuration in force."""
        return self._runtime.collector

    @property
    def targets(self) -> list[Target]:
        """Return every (account, region) target in configuration order."""
        return self._runtime.scheduler.targets

    def start(self) -> None:
        """Begin refreshing (interval mode) or wait for scrapes (scrape mode)."""
        self._started = True
        self.scheduler.start()

    def stop(self) -> None:
        """Stop refreshing and close connections."""
        self._started = False
        self.scheduler.stop()

    def reload(self) -> None:
        """Re-read the config file and switch to it; keep the old one if it is invalid.

        Raises ConfigError naming every problem. Targets that stay keep their data.
        """
        if self._config_file is None:
            raise ConfigError(["this exporter was not started from a config file"])
        with self._reload_lock:
            config = load_config(self._config_file)
            old = self._runtime
            self._runtime = self._build(config, previous=old.scheduler.targets)
            old.scheduler.stop()
            kept = {(t.account, t.region) for t in self.targets}
            for target in old.scheduler.targets:
                if (target.account, target.region) not in kept:
                    self._api_metrics.forget_target(target.account, target.region)
            if self._started:
                self.scheduler.start()
        log.info("configuration reloaded", extra={"targets": len(self.targets)})

    def probe(self, account: str, region: str, scrape_timeout: float | None) -> CollectorRegistry:
        """Return a registry with one target's metrics; refresh it first if due in scrape mode.

        Raises LookupError naming the configured targets when there is no such target.
        """
        target = next(
            (t for t in self.targets if (t.account, t.region) == (account, region)), None
        )
        if target is None:
            known = ", ".join(f"{t.account}/{t.region}" for t in self.targets)
            raise LookupError(f"no target account={account!r} region={region!r}; known: {known}")
        if self.config.refresh.mode == "scrape":
            self.scheduler.refresh_due(scrape_timeout, [target])
        self.scheduler.expire()
        config = self.config
        registry = CollectorRegistry(auto_describe=False)
        registry.register(
            InventoryCollector(
                [target], config.labels, self.inventory.interval, config.image_info.image_types
            )
        )
        registry.register(_TargetApiMetrics(self._api_metrics, account, region))
        return registry

    def try_reload(self) -> list[str]:
        """Reload as `reload` does, but log and return the problems instead of raising."""
        try:
            self.reload()
        except ConfigError as err:
            log.error(
                "configuration reload failed; keeping the previous configuration",
                extra={"problems": err.problems},
            )
            return err.problems
        return []

    def before_scrape(self, scrape_timeout: float | None) -> None:
        """Refresh what is due in scrape mode, then drop data past `max_staleness`."""
        if self.config.refresh.mode == "scrape":
            self.scheduler.refresh_due(scrape_timeout)
        self.scheduler.expire()

    def readiness_problems(self) -> list[str]:
        """List the targets without data younger than `max_staleness`; empty means ready."""
        now = time.time()
        max_age = self.config.refresh.max_staleness
        problems = []
        for target in self.targets:
            name = f"account={target.account} region={target.region}"
            if target.last_success is None:
                problems.append(f"{name}: no successful refresh yet")
            elif now - target.last_success > max_age:
                age = now - target.last_success
                problems.append(
                    f"{name}: last successful refresh {age:.0f}s ago, "
                    f"older than max_staleness ({max_age:g}s)"
                )
        return problems

    def _build(self, config: Config, previous: list[Target]) -> _Runtime:
        owners = owner_filters(config.image_types)
        earlier = {(t.account, t.region): t for t in previous}
        targets = []
        for account in config.accounts:
            for region in account.regions:
                client = _client(account, region, config, self._api_metrics)
                quotas = {**config.quotas, **account.quotas}
                target = Target(
                    client, config.image_types, config.labels, owners, quotas, config.image_info
                )
                target.adopt(earlier.get((account.name, region)))
                targets.append(target)
        interval = (
            config.refresh.interval
            if config.refresh.mode == "interval"
            else config.refresh.min_interval
        )
        return _Runtime(
            config,
            Scheduler(targets, config.refresh),
            InventoryCollector(targets, config.labels, interval, config.image_info.image_types),
        )


class _CurrentInventory(Collector):
    """Collect from the inventory of the configuration in force, across reloads."""

    def __init__(self, exporter: Exporter) -> None:
        self._exporter = exporter

    def describe(self) -> Iterable[Metric]:
        """Name the inventory families."""
        return self._exporter.inventory.describe()

    def collect(self) -> Iterable[Metric]:
        """Collect the inventory families."""
        return self._exporter.inventory.collect()


class _TargetApiMetrics(Collector):
    """Collect the API request families of one target only."""

    def __init__(self, metrics: ApiMetrics, account: str, region: str) -> None:
        self._metrics, self._account, self._region = metrics, account, region

    def collect(self) -> Iterable[Metric]:
        """Yield the target's request, error, latency and clock skew samples."""
        return self._metrics.collect_target(self._account, self._region)


def _client(account: AccountConfig, region: str, config: Config, metrics: ApiMetrics) -> BccClient:
    return BccClient(
        account.name,
        region,
        account.endpoint_for(region),
        partial(_credentials, account),
        config.http,
        metrics,
        page_size=config.page_size,
        pool_size=len(config.image_types),
    )


def _credentials(account: AccountConfig) -> Credentials:
    token = account.security_token.value if account.security_token else None
    return Credentials(account.access_key_id.value, account.secret_access_key.value, token)
