"""Scrape the exporter with a real Prometheus loading the rules; query it like the dashboard."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from exporter.app import Exporter
from exporter.simulator import Fault, SimulatedAccount, Simulator
from exporter.web import HttpServer, make_app
from tests.conftest import AK, SK, make_config, parse_samples
from tests.stack import JOB, Prometheus, running_prometheus, wait_for

ROOT = Path(__file__).resolve().parent.parent
RULES_FILE = ROOT / "prometheus" / "rules.yml"
DASHBOARD_FILE = ROOT / "grafana" / "dashboards" / "bcc-images.json"

ACCOUNT = "test"
QUOTA = 20
# Custom images per region: one near the quota, one well below it, one empty, one that grows.
CUSTOM_IMAGES = {"bj": 17, "gz": 3, "su": 0, "cd": 2}
GROWING_REGION, GROWN_TO = "cd", 6
REGIONS = list(CUSTOM_IMAGES)
RATIO_RULE = "account_region_image_type:bce_bcc_image_quota_usage:ratio"
QUOTA_ALERT = "BccImageQuotaUsageHigh"
QUOTA_ALERT_FOR = "2s"
REFRESH_INTERVAL = "2s"
# Grafana's variables as a dashboard showing every account and region would fill them in.
GRAFANA_VARIABLES = {
    "account": ACCOUNT,
    "region": "|".join(REGIONS),
    "__rate_interval": "10s",
    "__interval": "1s",
    "__range": "1m",
}
WAIT_SECONDS = 15.0

_VARIABLE = re.compile(r"\$\{(\w+)\}|\$(\w+)")


@dataclass(frozen=True)
class Stack:
    """Hold the running simulator, the exporter's URL and the Prometheus scraping it."""

    simulator: Simulator
    exporter_url: str
    prometheus: Prometheus


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Start simulator, exporter and Prometheus once; wait until a region's usage has grown."""
    directory = tmp_path_factory.mktemp("stack")
    with ExitStack() as running:
        simulator = running.enter_context(Simulator([_account()], seed=11))
        # Two failed requests, each retried successfully, put error counters in the exposition.
        simulator.add_fault(Fault("error", region="gz", times=2))
        exporter_url = _serve_exporter(simulator, running)
        prometheus = running.enter_context(
            running_prometheus(directory, exporter_url.removeprefix("http://"), _rules(directory))
        )
        started = Stack(simulator, exporter_url, prometheus)
        _grow_custom_images(started)
        yield started


def _account() -> SimulatedAccount:
    images = {region: {"System": 4, "Custom": n} for region, n in CUSTOM_IMAGES.items()}
    return SimulatedAccount(AK, SK, images=images)


def _serve_exporter(simulator: Simulator, running: ExitStack) -> str:
    exporter = Exporter(make_config(simulator, REGIONS, refresh={"interval": REFRESH_INTERVAL}))
    running.callback(exporter.stop)
    server = HttpServer(make_app(exporter), "127.0.0.1", 0)
    server.start()
    running.callback(server.stop)
    exporter.start()
    return f"http://127.0.0.1:{server.port}"


def _rules(directory: Path) -> Path:
    """Write a copy of the rules whose quota alert fires after seconds instead of minutes."""
    document = yaml.safe_load(RULES_FILE.read_text(encoding="utf-8"))
    alerts = [
        rule
        for group in document["groups"]
        for rule in group["rules"]
        if rule.get("alert") == QUOTA_ALERT
    ]
    assert len(alerts) == 1, f"{RULES_FILE} should define {QUOTA_ALERT} once"
    alerts[0]["for"] = QUOTA_ALERT_FOR
    path = directory / "rules.yml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def _grow_custom_images(stack: Stack) -> None:
    # The "days until exhausted" panel shows only a rising usage, so give it one rise to see.
    before = CUSTOM_IMAGES[GROWING_REGION] / QUOTA
    _wait_for_usage(stack.prometheus, GROWING_REGION, before)
    stack.simulator.set_images(AK, GROWING_REGION, {"System": 4, "Custom": GROWN_TO})
    _wait_for_usage(stack.prometheus, GROWING_REGION, GROWN_TO / QUOTA)


def _wait_for_usage(prometheus: Prometheus, region: str, expected: float) -> None:
    wait_for(
        f"{RATIO_RULE} of region {region} to be {expected}",
        lambda: _ratios(prometheus).get((region, "Custom")),
        WAIT_SECONDS,
        until=lambda ratio: ratio == pytest.approx(expected),
    )


def _ratios(prometheus: Prometheus) -> dict[tuple[str, str], float]:
    return {
        (series["metric"]["region"], series["metric"]["image_type"]): float(series["value"][1])
        for series in prometheus.query(RATIO_RULE)
    }


def _dashboard_queries() -> list[Any]:
    """Return one pytest param (panel title and refId as its id) per dashboard target."""
    dashboard = json.loads(DASHBOARD_FILE.read_text(encoding="utf-8"))
    params = []
    for row in dashboard["panels"]:
        for panel in [row, *row.get("panels", [])]:
            for target in panel.get("targets", []):
                title = f"{panel['title']} {target.get('refId', '')}".strip()
                params.append(pytest.param(target["expr"], id=title))
    return params


def _fill_in_variables(expr: str) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        assert name in GRAFANA_VARIABLES, f"no test value for dashboard variable ${name}"
        return GRAFANA_VARIABLES[name]

    return _VARIABLE.sub(value, expr)


def _custom_images(simulator: Simulator, region: str) -> int:
    return sum(1 for image in simulator.images(AK, region) if image.get("type") == "Custom")


def test_prometheus_scrapes_the_exporter(stack: Stack) -> None:
    up = wait_for(
        f'up{{job="{JOB}"}} == 1',
        lambda: stack.prometheus.query(f'up{{job="{JOB}"}} == 1'),
        WAIT_SECONDS,
    )

    assert len(up) == 1 and up[0]["metric"]["instance"] in stack.exporter_url


@pytest.mark.parametrize("expr", _dashboard_queries())
def test_dashboard_query_returns_series(stack: Stack, expr: str) -> None:
    query = _fill_in_variables(expr)

    wait_for(f"a series from {query}", lambda: stack.prometheus.query(query), WAIT_SECONDS)


def test_quota_usage_rule_divides_custom_images_by_the_quota_in_each_region(
    stack: Stack,
) -> None:
    expected = {
        (region, "Custom"): _custom_images(stack.simulator, region) / QUOTA for region in REGIONS
    }

    ratios = wait_for(
        f"{RATIO_RULE} to match the simulator",
        lambda: _ratios(stack.prometheus),
        WAIT_SECONDS,
        until=lambda ratios: ratios == pytest.approx(expected),
    )

    assert ratios[("su", "Custom")] == 0, "a region without custom images reads 0, not a gap"
    assert ratios[("bj", "Custom")] == pytest.approx(17 / QUOTA)


def test_quota_alert_fires_at_17_of_20_custom_images_and_not_at_3(stack: Stack) -> None:
    def quota_alerts() -> dict[str, str]:
        return {
            alert["labels"]["region"]: alert["state"]
            for alert in stack.prometheus.alerts()
            if alert["labels"]["alertname"] == QUOTA_ALERT
        }

    active = wait_for(
        f"{QUOTA_ALERT} to fire for region bj",
        quota_alerts,
        WAIT_SECONDS,
        until=lambda active: active.get("bj") == "firing",
    )

    assert active == {"bj": "firing"}, "only bj (17 of 20) is at or above 80 %; gz holds 3"


def test_promtool_finds_no_problem_in_a_scrape_with_api_errors_counted(stack: Stack) -> None:
    text = requests.get(f"{stack.exporter_url}/metrics", timeout=5).text
    errors = {
        dict(labels)["code"]
        for (name, labels) in parse_samples(text)
        if name == "bce_bcc_api_errors_total"
    }

    result = subprocess.run(
        ["promtool", "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )

    assert errors == {"InternalError"}, "the injected faults should be counted"
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "" and result.stderr.strip() == ""
