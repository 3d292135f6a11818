"""Check the Prometheus rules, their promtool unit tests and the example Prometheus config."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any, cast

import pytest
import yaml

PROMETHEUS_DIR = Path(__file__).resolve().parent.parent / "prometheus"
RULES_FILE = PROMETHEUS_DIR / "rules.yml"
RULE_TEST_FILES = sorted(PROMETHEUS_DIR.glob("*_test.yml"))
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
EXPORTER_JOB = "bcc-image-exporter"
ALERT_PREFIX = "BccImage"
SEVERITIES = {"warning", "critical"}
# Alerts about the exporter process as a whole: they carry no account or region label.
EXPORTER_WIDE_ALERTS = {"BccImageExporterDown", "BccImageExporterAbsent"}
# The count alert and the per-image alert must agree on what a failed image is.
FAILED_IMAGE_ALERTS = ("BccImageFailedImages", "BccImageFailed")
FAILED_STATUS_MATCHER = 'status=~"CreatedFailed|CreateFailed|Error"'


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    """Run promtool; fail (never skip) when it is missing, as CI installs it."""
    path = shutil.which("promtool")
    assert path is not None, (
        "promtool is not on PATH; install Debian's prometheus package "
        "(scripts/install-system-deps.sh does it)"
    )
    return subprocess.run(
        [path, *args], capture_output=True, text=True, timeout=60, check=False, cwd=PROMETHEUS_DIR
    )


def load_yaml(path: Path) -> dict[str, Any]:
    """Return a YAML file's top-level mapping."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{path} must hold a mapping"
    return cast(dict[str, Any], data)


def rules(kind: str) -> list[dict[str, Any]]:
    """Return every `alert` or `record` rule of rules.yml."""
    groups = load_yaml(RULES_FILE)["groups"]
    return [rule for group in groups for rule in group["rules"] if kind in rule]


def alert_cases() -> list[tuple[str, bool]]:
    """Return (alertname, fires) for every alert_rule_test case in the unit test files."""
    cases = []
    for path in RULE_TEST_FILES:
        for test in load_yaml(path)["tests"]:
            for case in test.get("alert_rule_test", []):
                cases.append((case["alertname"], bool(case.get("exp_alerts"))))
    return cases


ALERTS = {rule["alert"]: rule for rule in rules("alert")}


def test_rule_unit_test_files_exist() -> None:
    assert RULE_TEST_FILES, "no prometheus/*_test.yml file found"


def test_rules_pass_promtool_check() -> None:
    result = promtool("check", "rules", str(RULES_FILE))

    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_rule_unit_tests_pass_promtool() -> None:
    result = promtool("test", "rules", *(str(path) for path in RULE_TEST_FILES))

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(RULE_TEST_FILES)


def test_example_prometheus_config_passes_promtool_check() -> None:
    result = promtool("check", "config", str(PROMETHEUS_CONFIG))

    assert result.returncode == 0, result.stdout + result.stderr


def test_example_prometheus_config_scrapes_the_exporter_job_and_loads_the_rules() -> None:
    config = load_yaml(PROMETHEUS_CONFIG)

    jobs = [job["job_name"] for job in config["scrape_configs"]]
    assert EXPORTER_JOB in jobs
    assert [PROMETHEUS_DIR / name for name in config["rule_files"]] == [RULES_FILE]


def test_unit_tests_load_the_rules_file() -> None:
    for path in RULE_TEST_FILES:
        assert [PROMETHEUS_DIR / name for name in load_yaml(path)["rule_files"]] == [RULES_FILE]


def test_quota_usage_ratio_is_recorded() -> None:
    records = [rule["record"] for rule in rules("record")]

    assert "account_region_image_type:bce_bcc_image_quota_usage:ratio" in records


@pytest.mark.parametrize("name", sorted(ALERTS))
def test_alert_has_summary_description_and_severity(name: str) -> None:
    rule = ALERTS[name]

    assert rule["annotations"].get("summary", "").strip()
    assert rule["annotations"].get("description", "").strip()
    assert rule["labels"].get("severity") in SEVERITIES


@pytest.mark.parametrize("name", sorted(ALERTS))
def test_alert_name_starts_with_bcc_image(name: str) -> None:
    assert name.startswith(ALERT_PREFIX)


@pytest.mark.parametrize("name", sorted(set(ALERTS) - EXPORTER_WIDE_ALERTS))
def test_alert_description_names_account_and_region(name: str) -> None:
    description = ALERTS[name]["annotations"]["description"]

    assert "$labels.account" in description
    assert "$labels.region" in description


@pytest.mark.parametrize("name", sorted(EXPORTER_WIDE_ALERTS))
def test_exporter_wide_alert_watches_the_exporter_job(name: str) -> None:
    assert f'job="{EXPORTER_JOB}"' in ALERTS[name]["expr"]


@pytest.mark.parametrize("name", sorted(ALERTS))
def test_alert_fires_in_some_unit_test(name: str) -> None:
    assert (name, True) in alert_cases(), f"no unit test expects {name} to fire"


@pytest.mark.parametrize("name", sorted(ALERTS))
def test_alert_stays_silent_in_some_unit_test(name: str) -> None:
    assert (name, False) in alert_cases(), f"no unit test expects {name} to stay silent"


@pytest.mark.parametrize("name", FAILED_IMAGE_ALERTS)
def test_failed_image_alerts_match_the_same_statuses(name: str) -> None:
    matchers = re.findall(r'status=~"[^"]*"', ALERTS[name]["expr"])

    assert matchers
    assert set(matchers) == {FAILED_STATUS_MATCHER}


def test_unit_tests_name_only_existing_alerts() -> None:
    # A misspelled alertname makes a "stays silent" case pass without testing anything.
    unknown = {name for name, _ in alert_cases()} - set(ALERTS)

    assert not unknown
