"""Per-image series with their cap, and /probe serving one target for sharded scraping."""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
import requests

from exporter.app import Exporter
from exporter.simulator import Simulator
from exporter.web import HttpServer, make_app
from tests.conftest import AK, Samples, make_config, parse_samples, refresh_all, scrape, value


def _info_series(samples: Samples, region: str) -> dict[str, dict[str, str]]:
    found = {}
    for (name, labels), _ in samples.items():
        label_map = dict(labels)
        if name == "bce_bcc_image_info" and label_map["region"] == region:
            found[label_map["image_id"]] = label_map
    return found


def test_per_image_series_are_off_by_default(simulator: Simulator) -> None:
    exporter = Exporter(make_config(simulator, ["bj"]))
    refresh_all(exporter)
    assert not any(name.startswith("bce_bcc_image_info") for name, _ in scrape(exporter))


def test_custom_images_get_one_info_series_each_with_their_creation_time(
    simulator: Simulator,
) -> None:
    exporter = Exporter(make_config(simulator, ["bj"], image_info={"enabled": True}))
    refresh_all(exporter)
    samples = scrape(exporter)

    custom = [i for i in simulator.images(AK, "bj") if i["type"] == "Custom"]
    info = _info_series(samples, "bj")
    assert set(info) == {i["id"] for i in custom}, "Custom only, every one of them"
    for image in custom:
        labels = info[str(image["id"])]
        assert labels["image_name"] == image["name"] and labels["status"] == image["status"]
        created = datetime.fromisoformat(str(image["createTime"]).replace("Z", "+00:00"))
        assert (
            value(
                samples,
                "bce_bcc_image_created_timestamp_seconds",
                account="test",
                region="bj",
                image_id=str(image["id"]),
            )
            == created.timestamp()
        )


def test_the_cap_drops_series_counts_them_and_logs_once_per_refresh(
    simulator: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    config = make_config(
        simulator, ["bj"], image_info={"enabled": True, "image_types": ["Custom"], "max_series": 5}
    )
    exporter = Exporter(config)
    custom = sum(1 for i in simulator.images(AK, "bj") if i["type"] == "Custom")

    with caplog.at_level(logging.WARNING):
        refresh_all(exporter)
        refresh_all(exporter)
    samples = scrape(exporter)

    assert len(_info_series(samples, "bj")) == 5
    dropped = value(samples, "bce_bcc_image_series_dropped_total", account="test", region="bj")
    assert dropped == 2 * (custom - 5)
    warnings = [r for r in caplog.records if "over the cap" in r.getMessage()]
    assert len(warnings) == 2


@pytest.fixture
def probed(simulator: Simulator) -> Iterator[tuple[Exporter, str]]:
    config = make_config(
        simulator, ["bj", "gz"], refresh={"mode": "scrape"}, image_info={"enabled": True}
    )
    exporter = Exporter(config)
    server = HttpServer(make_app(exporter), "127.0.0.1", 0)
    server.start()
    try:
        yield exporter, f"http://127.0.0.1:{server.port}/probe"
    finally:
        server.stop()
        exporter.stop()


def test_probe_serves_only_the_asked_target_and_calls_only_its_api(
    probed: tuple[Exporter, str], simulator: Simulator
) -> None:
    _, url = probed
    simulator.clear_requests()

    response = requests.get(url, params={"account": "test", "region": "gz"}, timeout=10)

    assert response.status_code == 200
    samples = parse_samples(response.text)
    regions = {dict(labels)["region"] for _, labels in samples if "region" in dict(labels)}
    assert regions == {"gz"}
    assert value(samples, "bce_bcc_up", account="test", region="gz") == 1
    assert value(
        samples, "bce_bcc_api_requests_total", account="test", region="gz", operation="ListImages"
    ) == len(simulator.requests)
    assert {r.region for r in simulator.requests} == {"gz"}
    check = subprocess.run(
        ["promtool", "check", "metrics"], input=response.text, capture_output=True, text=True
    )
    assert check.returncode == 0 and check.stdout + check.stderr == ""


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"account": "test", "region": "cd"}, "no target account='test' region='cd'"),
        ({"account": "other", "region": "bj"}, "known: test/bj, test/gz"),
        ({"account": "test"}, "needs ?account=NAME&region=ID"),
    ],
)
def test_probe_of_an_unknown_target_is_a_400_with_the_reason(
    probed: tuple[Exporter, str], params: dict[str, str], reason: str
) -> None:
    _, url = probed
    response = requests.get(url, params=params, timeout=10)
    assert response.status_code == 400 and reason in response.text


def test_the_readmes_sharding_example_is_a_valid_prometheus_config(tmp_path: Path) -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    section = readme[readme.index("### Many accounts") :]
    example = section[section.index("```yaml") + len("```yaml") : section.index("```\n", 10)]
    (tmp_path / "prometheus.yml").write_text(example)

    result = subprocess.run(
        ["promtool", "check", "config", str(tmp_path / "prometheus.yml")],
        capture_output=True,
        text=True,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "/probe" in example and "hashmod" in example


def test_an_image_listed_twice_is_an_error_not_two_series() -> None:
    from exporter.errors import PaginationError
    from exporter.inventory import Tally, owner_filters

    tally = Tally(("image_type",), owner_filters(["All"]), ("Custom",), 10)
    image = {"id": "m-1", "type": "Custom", "name": "web"}
    tally.add_page([image, {"id": "m-2", "type": "Custom"}], "All")

    with pytest.raises(PaginationError, match="m-1 appears twice"):
        tally.add_page([{"id": "m-3", "type": "Custom"}, image], "All")


def test_the_allocator_tuning_takes_effect_on_glibc() -> None:
    import platform

    from exporter.allocator import pin_mmap_threshold

    assert platform.libc_ver()[0] == "glibc", "the supported platforms use glibc"
    assert pin_mmap_threshold() is True
