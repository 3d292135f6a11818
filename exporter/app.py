"""Wire configuration, clients, targets, scheduler and registry into one exporter."""

from __future__ import annotations

import time
from functools import partial

from prometheus_client import CollectorRegistry, disable_created_metrics
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from exporter.apimetrics import ApiMetrics
from exporter.client import BccClient
from exporter.collector import BuildInfoCollector, InventoryCollector
from exporter.inventory import owner_filters
from exporter.scheduler import Scheduler
from exporter.settings import AccountConfig, Config
from exporter.signer import Credentials
from exporter.targets import Target


class Exporter:
    """Own the registry and the targets; the HTTP layer asks it for metrics and readiness."""

    def __init__(self, config: Config) -> None:
        # `_created` series only add noise to counters that live as long as the process.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.config = config
        self.registry = CollectorRegistry()
        api_metrics = ApiMetrics(self.registry)
        owners = owner_filters(config.image_types)
        targets = [
            Target(
                _client(account, region, config, api_metrics),
                config.image_types,
                config.labels,
                owners,
                {**config.quotas, **account.quotas},
            )
            for account in config.accounts
            for region in account.regions
        ]
        self.scheduler = Scheduler(targets, config.refresh)
        interval = (
            config.refresh.interval
            if config.refresh.mode == "interval"
            else config.refresh.min_interval
        )
        self.registry.register(InventoryCollector(targets, config.labels, interval))
        self.registry.register(BuildInfoCollector())
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)

    @property
    def targets(self) -> list[Target]:
        """Return every (account, region) target in configuration order."""
        return self.scheduler.targets

    def start(self) -> None:
        """Begin refreshing (interval mode) or wait for scrapes (scrape mode)."""
        self.scheduler.start()

    def stop(self) -> None:
        """Stop refreshing and close connections."""
        self.scheduler.stop()

    def before_scrape(self, scrape_timeout: float | None) -> None:
        """Refresh what is due in scrape mode, then drop data past `max_staleness`."""
        if self.config.refresh.mode == "scrape":
            self.scheduler.refresh_due(scrape_timeout)
        self.scheduler.expire()

    def readiness_problems(self) -> list[str]:
        """List the targets without data younger than `max_staleness`; empty means ready."""
        now = time.time()
        problems = []
        max_age = self.config.refresh.max_staleness
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
    return Credentials(account.access_key_id, account.secret_access_key.value, token)
