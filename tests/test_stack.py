"""Scrape the exporter with a real Prometheus loading the rules; query it like the dashboard."""

from __future__ import annotations

import calendar
import json
import re
import subprocess
import time
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
SEED = 11
# Custom images per region: one near the quota, one well below it, one empty, one that grows,
# and one whose only custom image the seeded simulator puts in status Error.
CUSTOM_IMAGES = {"bj": 17, "gz": 3, "su": 0, "cd": 2, "bd": 1}
GROWING_REGION, GROWN_TO = "cd", 6
REGIONS = list(CUSTOM_IMAGES)
# Per-image series for custom images, capped below bj's 17 so the cap bites there only.
MAX_SERIES = 10
FAILED_STATUSES = {"CreatedFailed", "CreateFailed", "Error"}
RATIO_RULE = "account_region_image_type:bce_bcc_image_quota_usage:ratio"
QUOTA_ALERT = "BccImageQuotaUsageHigh"
FAILED_IMAGE_ALERT = "BccImageFailed"
FAILED_COUNT_ALERT = "BccImageFailedImages"
DROPPED_ALERT = "BccImageSeriesDropped"
# Alerts whose `for` is cut from minutes to seconds in the stack's copy of the rules.
SHORTENED_ALERTS = (QUOTA_ALERT, FAILED_IMAGE_ALERT, FAILED_COUNT_ALERT, DROPPED_ALERT)
SHORT_FOR = "2s"
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
        simulator = running.enter_context(Simulator([_account()], seed=SEED))
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
    config = make_config(
        simulator,
        REGIONS,
        refresh={"interval": REFRESH_INTERVAL},
        image_info={"enabled": True, "image_types": ["Custom"], "max_series": MAX_SERIES},
    )
    exporter = Exporter(config)
    running.callback(exporter.stop)
    server = HttpServer(make_app(exporter), "127.0.0.1", 0)
    server.start()
    running.callback(server.stop)
    exporter.start()
    return f"http://127.0.0.1:{server.port}"


def _rules(directory: Path) -> Path:
    """Write a copy of the rules whose alerts under test fire after seconds, not minutes."""
    document = yaml.safe_load(RULES_FILE.read_text(encoding="utf-8"))
    for name in SHORTENED_ALERTS:
        alerts = [
            rule
            for group in document["groups"]
            for rule in group["rules"]
            if rule.get("alert") == name
        ]
        assert len(alerts) == 1, f"{RULES_FILE} should define {name} once"
        alerts[0]["for"] = SHORT_FOR
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


def _failed_custom_images(simulator: Simulator) -> set[tuple[str, str, str, str]]:
    """Return (region, image id, name, status) of every custom image in a failed status."""
    return {
        (region, image["id"], image["name"], image["status"])
        for region in REGIONS
        for image in simulator.images(AK, region)
        if image.get("type") == "Custom" and image.get("status") in FAILED_STATUSES
    }


def _alert_states(prometheus: Prometheus, name: str, *labels: str) -> dict[tuple[str, ...], str]:
    """Return the state of each pending or firing alert `name`, keyed by the given labels."""
    return {
        tuple(alert["labels"].get(label, "") for label in labels): alert["state"]
        for alert in prometheus.alerts()
        if alert["labels"]["alertname"] == name
    }


def _table_query(title: str) -> str:
    """Return the query of the dashboard's table panel `title`, variables filled in."""
    dashboard = json.loads(DASHBOARD_FILE.read_text(encoding="utf-8"))
    (expr,) = [
        target["expr"]
        for row in dashboard["panels"]
        for panel in [row, *row.get("panels", [])]
        if panel["type"] == "table" and panel["title"] == title
        for target in panel["targets"]
    ]
    return _fill_in_variables(expr)


def _created(image: dict[str, Any]) -> float:
    return float(calendar.timegm(time.strptime(image["createTime"], "%Y-%m-%dT%H:%M:%SZ")))


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


def test_custom_image_table_lists_each_named_image_with_its_age(stack: Stack) -> None:
    images = {
        image["id"]: image
        for region in REGIONS
        for image in stack.simulator.images(AK, region)
        if image.get("type") == "Custom"
    }
    shown = {
        region: min(_custom_images(stack.simulator, region), MAX_SERIES) for region in REGIONS
    }
    query = _table_query("Custom images")

    rows = wait_for(
        f"one row per named custom image from {query}",
        lambda: stack.prometheus.query(query),
        WAIT_SECONDS,
        until=lambda rows: len(rows) == sum(shown.values()),
    )

    now = time.time()
    for row in rows:
        labels, age = row["metric"], float(row["value"][1])
        image = images[labels["image_id"]]
        assert (labels["image_name"], labels["status"]) == (image["name"], image["status"])
        assert age == pytest.approx(now - _created(image), abs=30)
    per_region = {region: sum(r["metric"]["region"] == region for r in rows) for region in REGIONS}
    assert per_region == shown, f"bj is capped at image_info.max_series={MAX_SERIES}"


def test_failed_image_alert_names_the_failed_image_and_the_count_alert_stays_silent(
    stack: Stack,
) -> None:
    failed = _failed_custom_images(stack.simulator)
    expected = {key: "firing" for key in failed}

    active = wait_for(
        f"{FAILED_IMAGE_ALERT} to fire for {sorted(failed)}",
        lambda: _alert_states(
            stack.prometheus, FAILED_IMAGE_ALERT, "region", "image_id", "image_name", "status"
        ),
        WAIT_SECONDS,
        until=lambda active: active == expected,
    )

    assert [region for region, *_ in failed] == ["bd"], f"seed {SEED} fails bd's image only"
    assert active == expected
    # The failed image has a per-image series, so the count alert must not page for it too.
    assert _alert_states(stack.prometheus, FAILED_COUNT_ALERT, "region") == {}


def test_series_dropped_alert_fires_only_where_custom_images_exceed_max_series(
    stack: Stack,
) -> None:
    over = {
        (region,) for region in REGIONS if _custom_images(stack.simulator, region) > MAX_SERIES
    }

    active = wait_for(
        f"{DROPPED_ALERT} to fire for {sorted(over)}",
        lambda: _alert_states(stack.prometheus, DROPPED_ALERT, "region"),
        WAIT_SECONDS,
        until=lambda active: set(active) == over and set(active.values()) == {"firing"},
    )

    assert over == {("bj",)}, f"only bj holds more than {MAX_SERIES} custom images"
    assert active == {("bj",): "firing"}
