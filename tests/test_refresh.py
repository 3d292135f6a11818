"""Refresh targets against the simulated BCC API and check what the exporter publishes."""

from __future__ import annotations

import time

import pytest

from exporter.app import Exporter
from exporter.simulator import Fault, Simulator
from tests.conftest import (
    AK,
    expected_counts,
    image_counts,
    make_config,
    minimum_calls,
    refresh_all,
    scrape,
    value,
)


@pytest.mark.parametrize(
    "counts",
    [
        pytest.param({}, id="empty-account"),
        pytest.param({"System": 4, "Custom": 3}, id="single-page"),
        pytest.param(
            {"System": 2300, "Custom": 17, "Sharing": 1001, "GpuBccSystem": 999}, id="pages"
        ),
    ],
)
def test_counts_equal_the_dataset_exactly(simulator: Simulator, counts: dict[str, int]) -> None:
    simulator.set_images(AK, "bj", counts)
    config = make_config(simulator, ["bj"])
    exporter = Exporter(config)

    refresh_all(exporter)
    samples = scrape(exporter)

    assert image_counts(samples, "bj") == expected_counts(simulator, "bj", config)
    assert sum(image_counts(samples, "bj").values()) == sum(counts.values())
    assert value(samples, "bce_bcc_up", account="test", region="bj") == 1


@pytest.mark.parametrize("page_size", [1, 7, 1000])
def test_refresh_makes_the_minimum_number_of_calls(simulator: Simulator, page_size: int) -> None:
    simulator.set_images(AK, "bj", {"System": 12, "Custom": 9, "Sharing": 7, "GpuBccCustom": 0})
    config = make_config(simulator, ["bj"], page_size=page_size)
    exporter = Exporter(config)
    simulator.clear_requests()

    refresh_all(exporter)

    calls: dict[str, int] = {}
    for request in simulator.requests:
        calls[request.image_type] = calls.get(request.image_type, 0) + 1
    expected = {
        name: minimum_calls(len(simulator.images(AK, "bj", name)), page_size)
        for name in config.image_types
    }
    assert calls == expected


def test_images_are_counted_once_when_filters_overlap(simulator: Simulator) -> None:
    simulator.set_images(AK, "bj", {"System": 3, "Custom": 4})
    config = make_config(simulator, ["bj"], image_types=["All", "Custom", "System"])
    exporter = Exporter(config)

    refresh_all(exporter)

    assert sum(image_counts(scrape(exporter), "bj").values()) == 7


def test_missing_and_null_fields_are_counted_as_unknown(simulator: Simulator) -> None:
    simulator.set_images(AK, "bj", {"Custom": 400})
    images = simulator.images(AK, "bj")
    assert any(image.get("osVersion") is None for image in images), "dataset lacks null fields"
    exporter = Exporter(make_config(simulator, ["bj"], labels=["os_version"]))

    refresh_all(exporter)
    samples = scrape(exporter)

    unknown = sum(1 for image in images if image.get("osVersion") in (None, ""))
    assert image_counts(samples, "bj")[(("os_version", "unknown"),)] == unknown


@pytest.mark.parametrize(
    ("fault", "code"),
    [
        (Fault("marker_loop", page=2), "invalid_response"),
        (Fault("missing_next_marker"), "invalid_response"),
        (Fault("oversized_page"), "invalid_response"),
        (Fault("not_a_list"), "invalid_response"),
        (Fault("truncated"), "invalid_response"),
        (Fault("malformed"), "invalid_response"),
        (Fault("error", status=400, code="SignatureDoesNotMatch"), "SignatureDoesNotMatch"),
        (Fault("error", status=403, code="InvalidAccessKeyId"), "InvalidAccessKeyId"),
        (Fault("error", status=403, code="AccessDenied"), "AccessDenied"),
    ],
    ids=lambda item: item.kind if isinstance(item, Fault) else item,
)
def test_a_failed_refresh_publishes_nothing_and_is_not_retried(
    simulator: Simulator, fault: Fault, code: str
) -> None:
    simulator.set_images(AK, "bj", {"System": 2500, "Custom": 5})
    simulator.add_fault(Fault(**{**fault.__dict__, "region": "bj", "image_type": "All"}))
    exporter = Exporter(make_config(simulator, ["bj", "gz"], page_size=1000))
    simulator.clear_requests()

    refresh_all(exporter)
    samples = scrape(exporter)

    assert value(samples, "bce_bcc_up", account="test", region="bj") == 0
    assert value(samples, "bce_bcc_up", account="test", region="gz") == 1
    assert not image_counts(samples, "bj"), "a failed first refresh must publish no counts"
    assert image_counts(samples, "gz") == expected_counts(simulator, "gz", exporter.config)
    errors = value(
        samples,
        "bce_bcc_api_errors_total",
        account="test",
        region="bj",
        operation="ListImages",
        code=code,
    )
    assert errors == 1
    failing = [r for r in simulator.requests if r.region == "bj" and r.image_type == "All"]
    assert len(failing) == (fault.page or 1), "the failing page must not be retried"


@pytest.mark.parametrize(
    ("fault", "code"),
    [
        (Fault("error", status=500, code="InternalError", times=2), "InternalError"),
        (Fault("error", status=503, code="ServiceUnavailable", times=2), "ServiceUnavailable"),
        (Fault("html", status=502, times=2), "http_502"),
        (Fault("empty", status=504, times=2), "http_504"),
        (Fault("throttle", times=2), "throttled"),
    ],
    ids=lambda item: item.kind if isinstance(item, Fault) else item,
)
def test_transient_errors_are_retried_until_the_page_arrives(
    simulator: Simulator, fault: Fault, code: str
) -> None:
    simulator.add_fault(Fault(**{**fault.__dict__, "region": "bj", "image_type": "All"}))
    exporter = Exporter(make_config(simulator, ["bj"]))
    simulator.clear_requests()

    refresh_all(exporter)
    samples = scrape(exporter)

    assert value(samples, "bce_bcc_up", account="test", region="bj") == 1
    labels = {"account": "test", "region": "bj", "operation": "ListImages"}
    assert value(samples, "bce_bcc_api_errors_total", **labels, code=code) == 2
    all_calls = [r for r in simulator.requests if r.image_type == "All"]
    assert len(all_calls) == 3
    assert len({r.headers["authorization"] for r in all_calls}) >= 1
    total = value(samples, "bce_bcc_api_requests_total", **labels)
    assert total == len(simulator.requests)


def test_retry_after_is_honoured(simulator: Simulator) -> None:
    simulator.add_fault(Fault("throttle", region="bj", image_type="All", times=1, retry_after=0.6))
    exporter = Exporter(make_config(simulator, ["bj"]))

    started = time.monotonic()
    refresh_all(exporter)

    assert time.monotonic() - started >= 0.6
    assert exporter.targets[0].outcome is not None and exporter.targets[0].outcome.up


def test_retries_stop_at_the_refresh_deadline(simulator: Simulator) -> None:
    simulator.add_fault(Fault("error", status=503, code="ServiceUnavailable", region="bj"))
    config = make_config(
        simulator,
        ["bj"],
        http={"max_attempts": 10, "initial_backoff": "400ms", "max_backoff": "400ms"},
        refresh={"timeout": "1s"},
    )
    exporter = Exporter(config)

    started = time.monotonic()
    refresh_all(exporter, timeout=1.0)

    assert time.monotonic() - started < 1.5
    assert exporter.targets[0].outcome is not None and not exporter.targets[0].outcome.up


def test_a_failing_region_keeps_its_last_good_data(simulator: Simulator) -> None:
    exporter = Exporter(make_config(simulator, ["bj", "gz"]))
    refresh_all(exporter)
    before = scrape(exporter)

    simulator.add_fault(Fault("error", status=500, code="InternalError", region="gz"))
    refresh_all(exporter)
    after = scrape(exporter)

    assert value(after, "bce_bcc_up", account="test", region="gz") == 0
    assert value(after, "bce_bcc_up", account="test", region="bj") == 1
    assert image_counts(after, "gz") == image_counts(before, "gz") != {}
    assert value(after, "bce_bcc_last_success_timestamp_seconds", account="test", region="gz") == (
        value(before, "bce_bcc_last_success_timestamp_seconds", account="test", region="gz")
    )


def test_a_successful_refresh_replaces_the_data_even_when_empty(simulator: Simulator) -> None:
    exporter = Exporter(make_config(simulator, ["bj"]))
    refresh_all(exporter)
    assert image_counts(scrape(exporter), "bj")

    simulator.set_images(AK, "bj", {"Custom": 1})
    refresh_all(exporter)
    assert sum(image_counts(scrape(exporter), "bj").values()) == 1

    simulator.set_images(AK, "bj", {})
    refresh_all(exporter)
    samples = scrape(exporter)
    assert not image_counts(samples, "bj")
    assert value(samples, "bce_bcc_up", account="test", region="bj") == 1


def test_stale_data_is_dropped_after_max_staleness(simulator: Simulator) -> None:
    config = make_config(simulator, ["bj"], refresh={"mode": "scrape", "max_staleness": "1s"})
    exporter = Exporter(config)
    refresh_all(exporter)
    assert image_counts(scrape(exporter), "bj")

    simulator.add_fault(Fault("error", status=500, code="InternalError"))
    refresh_all(exporter)
    assert image_counts(scrape(exporter), "bj"), "kept while younger than max_staleness"
    time.sleep(1.2)
    samples = scrape(exporter)

    assert not image_counts(samples, "bj")
    assert value(samples, "bce_bcc_up", account="test", region="bj") == 0
    assert value(samples, "bce_bcc_last_success_timestamp_seconds", account="test", region="bj")
    (problem,) = exporter.readiness_problems()
    assert problem.startswith("account=test region=bj: last successful refresh")


def test_quota_is_published_for_every_target_with_account_overrides(simulator: Simulator) -> None:
    config = make_config(simulator, ["bj", "gz"], quotas={"Custom": 20, "GpuBccCustom": 5})
    exporter = Exporter(config)

    samples = scrape(exporter)

    for region in ("bj", "gz"):
        labels = {"account": "test", "region": region}
        assert value(samples, "bce_bcc_image_quota", **labels, image_type="Custom") == 20
        assert value(samples, "bce_bcc_image_quota", **labels, image_type="GpuBccCustom") == 5


def test_temporary_credentials_sign_the_security_token() -> None:
    from exporter.simulator import SimulatedAccount

    account = SimulatedAccount(
        AK, "sk-temp", security_token="sts-token/abc==", images={"bj": {"Custom": 2}}
    )
    with Simulator([account]) as sim:
        data = {
            "accounts": [
                {
                    "name": "sts",
                    "access_key_id": AK,
                    "secret_access_key": "sk-temp",
                    "security_token": "sts-token/abc==",
                    "regions": ["bj"],
                    "endpoint": sim.endpoint,
                }
            ]
        }
        from exporter.config import parse_config

        exporter = Exporter(parse_config(data, environ={}))
        refresh_all(exporter)
        samples = scrape(exporter)

    assert value(samples, "bce_bcc_up", account="sts", region="bj") == 1
    assert sum(image_counts(samples, "bj").values()) == 2
