"""Check the Grafana dashboard: variables, panel queries, metric names and provisioning."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD_FILE = ROOT / "grafana" / "dashboards" / "bcc-images.json"
DATASOURCE_PROVISIONING = ROOT / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
DASHBOARD_PROVISIONING = ROOT / "grafana" / "provisioning" / "dashboards" / "bcc-images.yml"
RULES_FILE = ROOT / "prometheus" / "rules.yml"

# The exporter's metrics, as exposed (counters with `_total`, histograms by their series).
TARGET_METRICS = {
    "bce_bcc_images",
    "bce_bcc_image_quota",
    "bce_bcc_up",
    "bce_bcc_last_success_timestamp_seconds",
    "bce_bcc_refresh_duration_seconds",
    "bce_bcc_api_requests_total",
    "bce_bcc_api_errors_total",
    "bce_bcc_api_request_duration_seconds_bucket",
    "bce_bcc_api_request_duration_seconds_sum",
    "bce_bcc_api_request_duration_seconds_count",
    "bce_bcc_image_info",
    "bce_bcc_image_created_timestamp_seconds",
    "bce_bcc_image_series_dropped_total",
}
# Per-image series exist only with image_info.enabled, so panels reading them must say so.
PER_IMAGE_METRICS = {
    "bce_bcc_image_info",
    "bce_bcc_image_created_timestamp_seconds",
    "bce_bcc_image_series_dropped_total",
}
# Exporter-wide metrics without account and region labels: they cannot be filtered by them.
EXPORTER_METRICS = {"bce_bcc_refresh_interval_seconds", "bce_bcc_exporter_build_info"}
ROWS = ["Overview", "Inventory", "Custom images", "Quota", "API health"]
# Grafana variables replaced by plain values so promtool can parse the expressions.
VARIABLE_VALUES = {"$account": ".*", "$region": ".*", "$__rate_interval": "1m", "$__range": "1d"}

# Quoted strings are single tokens, so names inside label values are never mistaken for metrics.
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[A-Za-z_:][A-Za-z0-9_:]*|\S')
_NAME = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")


def load_dashboard() -> dict[str, Any]:
    """Return the dashboard JSON as a mapping."""
    return cast(dict[str, Any], json.loads(DASHBOARD_FILE.read_text(encoding="utf-8")))


def recording_rules() -> set[str]:
    """Return the names recorded by rules.yml."""
    groups = yaml.safe_load(RULES_FILE.read_text(encoding="utf-8"))["groups"]
    return {rule["record"] for group in groups for rule in group["rules"] if "record" in rule}


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Yield every panel, including those nested in collapsed rows."""
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def targets() -> list[tuple[str, str]]:
    """Return (panel title, expr) for every query target of the dashboard."""
    return [
        (panel["title"], target["expr"])
        for panel in panels(load_dashboard())
        for target in panel.get("targets", [])
    ]


def variable(name: str) -> dict[str, Any]:
    """Return one template variable by name."""
    found = [v for v in load_dashboard()["templating"]["list"] if v["name"] == name]
    assert len(found) == 1, f"expected one variable named {name}"
    return cast(dict[str, Any], found[0])


def selectors(expr: str) -> list[tuple[str, str]]:
    """Return (metric name, text inside its braces) for each metric of ours in an expression."""
    tokens = list(_TOKEN.finditer(expr))
    found = []
    for i, token in enumerate(tokens):
        if not _is_ours(token.group()):
            continue
        matchers = ""
        if i + 1 < len(tokens) and tokens[i + 1].group() == "{":
            close = next(t for t in tokens[i + 2 :] if t.group() == "}")
            matchers = expr[tokens[i + 1].end() : close.start()]
        found.append((token.group(), matchers))
    return found


def _is_ours(token: str) -> bool:
    # Our metrics, or anything shaped like a recording rule name (level:metric:operations).
    return _NAME.fullmatch(token) is not None and (
        token.startswith("bce_bcc_") or token.count(":") == 2
    )


def metric_names(expr: str) -> set[str]:
    """Return the names in an expression that look like ours: bce_bcc_* or recording rules."""
    return {name for name, _ in selectors(expr)}


def test_dashboard_has_a_stable_uid_and_title() -> None:
    dashboard = load_dashboard()

    assert dashboard["uid"] == "bcc-images"
    assert dashboard["title"]
    assert dashboard["id"] is None


def test_datasource_is_a_template_variable_of_prometheus_type() -> None:
    datasource = variable("datasource")

    assert datasource["type"] == "datasource"
    assert datasource["query"] == "prometheus"


@pytest.mark.parametrize("name", ["account", "region"])
def test_account_and_region_variables_are_multi_select_from_bce_bcc_up(name: str) -> None:
    var = variable(name)

    assert var["type"] == "query"
    assert var["multi"] is True
    assert var["includeAll"] is True
    assert var["allValue"] == ".*"
    assert re.fullmatch(rf"label_values\(bce_bcc_up(\{{.*\}})?, {name}\)", var["definition"])
    assert var["query"]["query"] == var["definition"]


def test_every_panel_and_variable_queries_the_datasource_variable() -> None:
    dashboard = load_dashboard()
    queried = [p for p in panels(dashboard) if p["type"] != "row"]
    queried += [v for v in dashboard["templating"]["list"] if v["type"] == "query"]

    for item in queried:
        assert item["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, item["title"]


def test_rows_are_overview_inventory_custom_images_quota_and_api_health() -> None:
    titles = [panel["title"] for panel in load_dashboard()["panels"] if panel["type"] == "row"]

    assert titles == ROWS


def test_panel_ids_are_unique() -> None:
    ids = [panel["id"] for panel in panels(load_dashboard())]

    assert len(ids) == len(set(ids))


def test_panels_do_not_overlap() -> None:
    cells: set[tuple[int, int]] = set()
    for panel in panels(load_dashboard()):
        pos = panel["gridPos"]
        area = {
            (x, y)
            for x in range(pos["x"], pos["x"] + pos["w"])
            for y in range(pos["y"], pos["y"] + pos["h"])
        }
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        assert not cells & area, f"{panel['title']} overlaps another panel"
        cells |= area


@pytest.mark.parametrize(("title", "expr"), targets(), ids=[title for title, _ in targets()])
def test_every_target_metric_is_filtered_by_account_and_region(title: str, expr: str) -> None:
    found = selectors(expr)

    assert found, f"{title}: the query reads none of the exporter's metrics"
    for name, matchers in found:
        if name not in EXPORTER_METRICS:
            assert 'account=~"$account"' in matchers, f"{title}: {name} misses $account"
            assert 'region=~"$region"' in matchers, f"{title}: {name} misses $region"


@pytest.mark.parametrize(("title", "expr"), targets(), ids=[title for title, _ in targets()])
def test_every_metric_named_is_exported_or_recorded(title: str, expr: str) -> None:
    known = TARGET_METRICS | EXPORTER_METRICS | recording_rules()

    assert metric_names(expr) <= known, f"{title}: unknown {metric_names(expr) - known}"


def test_selector_parser_sees_unfiltered_and_unknown_metrics() -> None:
    # Guards the two tests above against a parser that would find nothing.
    expr = 'sum(bce_bcc_up) / bce_bcc_nope{account=~"$account", x="bce_bcc_up"} + a:b:c'

    assert selectors(expr) == [
        ("bce_bcc_up", ""),
        ("bce_bcc_nope", 'account=~"$account", x="bce_bcc_up"'),
        ("a:b:c", ""),
    ]
    assert metric_names(expr) == {"bce_bcc_up", "bce_bcc_nope", "a:b:c"}


def test_every_target_expression_parses_with_promtool(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    assert promtool is not None, "promtool is not on PATH; install Debian's prometheus package"
    rules = []
    for i, (_, expr) in enumerate(targets()):
        for name, value in VARIABLE_VALUES.items():
            expr = expr.replace(name, value)
        rules.append({"record": f"dashboard:target_{i}:check", "expr": expr})
    rule_file = tmp_path / "dashboard.yml"
    rule_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))

    result = subprocess.run(
        [promtool, "check", "rules", str(rule_file)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr


def test_quota_panels_mark_80_and_100_percent() -> None:
    quota_panels = [
        panel
        for panel in panels(load_dashboard())
        if panel["type"] != "row"
        and panel["fieldConfig"]["defaults"]["unit"] == "percentunit"
        and "quota" in panel["title"].lower()
    ]

    assert quota_panels
    for panel in quota_panels:
        steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
        assert [step["value"] for step in steps[1:]] == [0.8, 1], panel["title"]


def test_panels_reading_per_image_series_say_they_need_image_info() -> None:
    readers = [
        panel
        for panel in panels(load_dashboard())
        if any(metric_names(t["expr"]) & PER_IMAGE_METRICS for t in panel.get("targets", []))
    ]

    assert readers
    for panel in readers:
        assert "image_info.enabled" in panel["description"], panel["title"]


def test_custom_image_table_joins_info_with_age_as_a_duration() -> None:
    (table,) = [
        panel
        for panel in panels(load_dashboard())
        if panel["type"] == "table" and panel["title"] == "Custom images"
    ]
    (target,) = table["targets"]
    columns = table["transformations"][0]["options"]["renameByName"]

    assert "time() - bce_bcc_image_created_timestamp_seconds" in target["expr"]
    assert "group_left (image_name, image_type, os_name, os_version, status)" in target["expr"]
    assert target["format"] == "table" and target["instant"] is True
    assert table["fieldConfig"]["defaults"]["unit"] == "dtdurations"
    assert set(columns.values()) >= {
        "Name",
        "ID",
        "Account",
        "Region",
        "Status",
        "OS",
        "OS version",
        "Age",
    }
    assert table["options"]["sortBy"] == [{"displayName": "Age", "desc": True}]


def test_latency_panel_uses_histogram_quantile_over_buckets() -> None:
    exprs = [expr for _, expr in targets() if "histogram_quantile" in expr]

    assert exprs
    for expr in exprs:
        assert "bce_bcc_api_request_duration_seconds_bucket" in expr
        assert "by (le)" in expr


def test_datasource_provisioning_points_at_prometheus() -> None:
    config = yaml.safe_load(DATASOURCE_PROVISIONING.read_text(encoding="utf-8"))

    (source,) = config["datasources"]
    assert source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"
    assert source["isDefault"] is True


def test_dashboard_provisioning_loads_files_from_one_directory() -> None:
    config = yaml.safe_load(DASHBOARD_PROVISIONING.read_text(encoding="utf-8"))

    (provider,) = config["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"].startswith("/")
