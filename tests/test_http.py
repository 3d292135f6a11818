"""Serve a real exporter on loopback and check its routes, scrape mode and exposition."""

from __future__ import annotations

import gzip
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest
import requests

from exporter.app import Exporter
from exporter.simulator import Fault, Simulator
from exporter.web import HttpServer, make_app
from tests.conftest import image_counts, make_config, parse_samples, refresh_all, value

Served = tuple[Exporter, str]


def _serve(exporter: Exporter) -> Iterator[Served]:
    server = HttpServer(make_app(exporter), "127.0.0.1", 0)
    server.start()
    try:
        yield exporter, f"http://127.0.0.1:{server.port}"
    finally:
        server.stop()
        exporter.stop()


@pytest.fixture
def interval_exporter(simulator: Simulator) -> Iterator[Served]:
    yield from _serve(Exporter(make_config(simulator, ["bj", "gz"])))


@pytest.fixture
def scrape_exporter(simulator: Simulator) -> Iterator[Served]:
    config = make_config(simulator, ["bj", "gz"], refresh={"mode": "scrape", "min_interval": "1m"})
    yield from _serve(Exporter(config))


def test_metrics_are_served_plain_and_gzipped(interval_exporter: Served) -> None:
    exporter, url = interval_exporter
    refresh_all(exporter)

    plain = requests.get(f"{url}/metrics", headers={"Accept-Encoding": "identity"}, timeout=5)
    zipped = requests.get(
        f"{url}/metrics", headers={"Accept-Encoding": "gzip"}, stream=True, timeout=5
    )
    raw = zipped.raw.read(decode_content=False)

    assert plain.status_code == 200 and "Content-Encoding" not in plain.headers
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(raw).decode().count("bce_bcc_images{") == plain.text.count(
        "bce_bcc_images{"
    )
    assert image_counts(parse_samples(plain.text), "bj")


def test_landing_page_links_to_metrics(interval_exporter: Served) -> None:
    _, url = interval_exporter
    page = requests.get(f"{url}/", timeout=5)
    assert page.status_code == 200 and 'href="metrics"' in page.text


def test_unknown_paths_get_404_and_other_methods_405(interval_exporter: Served) -> None:
    _, url = interval_exporter
    assert requests.get(f"{url}/nope", timeout=5).status_code == 404
    response = requests.post(f"{url}/metrics", timeout=5)
    assert response.status_code == 405 and response.headers["Allow"] == "GET, HEAD"


def test_readyz_turns_ready_once_every_target_has_data(interval_exporter: Served) -> None:
    exporter, url = interval_exporter
    assert requests.get(f"{url}/healthz", timeout=5).status_code == 200

    before = requests.get(f"{url}/readyz", timeout=5)
    refresh_all(exporter)
    after = requests.get(f"{url}/readyz", timeout=5)

    assert before.status_code == 503 and "region=bj: no successful refresh yet" in before.text
    assert after.status_code == 200


def test_interval_mode_scrapes_never_call_the_api(
    interval_exporter: Served, simulator: Simulator
) -> None:
    exporter, url = interval_exporter
    refresh_all(exporter)
    simulator.clear_requests()

    for _ in range(5):
        requests.get(f"{url}/metrics", timeout=5)

    assert simulator.requests == []


def test_concurrent_scrapes_share_one_refresh(
    scrape_exporter: Served, simulator: Simulator
) -> None:
    exporter, url = scrape_exporter
    simulator.add_fault(Fault("latency", delay=0.3))
    simulator.clear_requests()
    bodies: list[str] = []

    def scrape() -> None:
        bodies.append(requests.get(f"{url}/metrics", timeout=10).text)

    threads = [threading.Thread(target=scrape) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    filters = len(exporter.config.image_types)
    assert len(simulator.requests) == 2 * filters, "one refresh per target for all six scrapes"
    assert all(image_counts(parse_samples(body), "gz") for body in bodies)


def test_scrape_mode_skips_targets_younger_than_min_interval(
    scrape_exporter: Served, simulator: Simulator
) -> None:
    _, url = scrape_exporter
    requests.get(f"{url}/metrics", timeout=10)
    simulator.clear_requests()

    requests.get(f"{url}/metrics", timeout=10)

    assert simulator.requests == []


def test_scrape_mode_respects_the_prometheus_scrape_timeout(
    scrape_exporter: Served, simulator: Simulator
) -> None:
    _, url = scrape_exporter
    simulator.add_fault(Fault("latency", region="gz", delay=3.0))

    started = time.monotonic()
    response = requests.get(
        f"{url}/metrics", headers={"X-Prometheus-Scrape-Timeout-Seconds": "1.5"}, timeout=10
    )
    elapsed = time.monotonic() - started

    samples = parse_samples(response.text)
    assert elapsed < 1.5, "the answer must arrive before Prometheus gives up"
    assert value(samples, "bce_bcc_up", account="test", region="bj") == 1
    assert not image_counts(samples, "gz")


def test_promtool_finds_no_problem_in_the_exposition(interval_exporter: Served) -> None:
    exporter, url = interval_exporter
    refresh_all(exporter)
    text = requests.get(f"{url}/metrics", timeout=5).text

    result = subprocess.run(
        ["promtool", "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "" and result.stderr.strip() == ""


@pytest.mark.parametrize(
    ("accept_encoding", "gzipped"),
    [
        ("gzip", True),
        ("gzip;q=0", False),
        ("identity, gzip;q=0.5", True),
        ("br", False),
        ("*", True),
    ],
)
def test_gzip_follows_accept_encoding_qualities(
    interval_exporter: Served, accept_encoding: str, gzipped: bool
) -> None:
    _, url = interval_exporter
    response = requests.get(
        f"{url}/metrics", headers={"Accept-Encoding": accept_encoding}, stream=True, timeout=5
    )
    assert (response.headers.get("Content-Encoding") == "gzip") is gzipped
    assert response.headers["Vary"] == "Accept-Encoding"


def test_head_announces_the_length_of_the_body_it_leaves_out(interval_exporter: Served) -> None:
    _, url = interval_exporter
    get = requests.get(f"{url}/healthz", timeout=5)
    head = requests.head(f"{url}/healthz", timeout=5)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["Content-Length"] == get.headers["Content-Length"] == str(len(get.content))
