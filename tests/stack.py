"""Run a real Prometheus on loopback for the stack tests and query its HTTP API."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar, cast

import requests
import yaml

JOB = "bcc-image-exporter"
READY_TIMEOUT_SECONDS = 20.0
STOP_TIMEOUT_SECONDS = 5.0
POLL_SECONDS = 0.2
REQUEST_TIMEOUT_SECONDS = 5.0

T = TypeVar("T")


class Prometheus:
    """Ask a running Prometheus for instant queries and alerts."""

    def __init__(self, url: str) -> None:
        self.url = url

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Return the series of an instant query at the current time."""
        data = self._get("/api/v1/query", {"query": expr})
        assert data["resultType"] == "vector", f"{expr!r} gave a {data['resultType']}"
        return cast(list[dict[str, Any]], data["result"])

    def alerts(self) -> list[dict[str, Any]]:
        """Return every pending or firing alert."""
        return cast(list[dict[str, Any]], self._get("/api/v1/alerts", {})["alerts"])

    def _get(self, path: str, params: dict[str, str]) -> dict[str, Any]:
        response = requests.get(self.url + path, params=params, timeout=REQUEST_TIMEOUT_SECONDS)
        body = response.json()
        assert body.get("status") == "success", f"GET {path} {params}: {body}"
        return cast(dict[str, Any], body["data"])


def wait_for(
    what: str, check: Callable[[], T], timeout: float, until: Callable[[T], bool] = bool
) -> T:
    """Call `check` until `until` accepts its result (by default: truthy); fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if until(result):
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout:g}s for {what}; last result: {result!r}")
        time.sleep(POLL_SECONDS)


def write_config(directory: Path, target: str, rule_file: Path) -> Path:
    """Write a prometheus.yml scraping one exporter and evaluating the rules every second."""
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rule_file)],
        "scrape_configs": [{"job_name": JOB, "static_configs": [{"targets": [target]}]}],
    }
    path = directory / "prometheus.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


@contextmanager
def running_prometheus(directory: Path, target: str, rule_file: Path) -> Iterator[Prometheus]:
    """Start Prometheus on a free loopback port, wait until it is ready, stop it on exit."""
    binary = shutil.which("prometheus")
    assert binary is not None, (
        "prometheus is not on PATH; install Debian's prometheus package "
        "(scripts/install-system-deps.sh does it)"
    )
    config = write_config(directory, target, rule_file)
    address = f"127.0.0.1:{_free_port()}"
    log_path = directory / "prometheus.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={directory / 'data'}",
                f"--web.listen-address={address}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_ready(process, f"http://{address}", log_path)
            yield Prometheus(f"http://{address}")
        finally:
            _stop(process)


def _free_port() -> int:
    # Prometheus cannot report a port it chose itself, so pick one and hand it over.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_ready(process: subprocess.Popen[bytes], url: str, log_path: Path) -> None:
    def ready() -> bool:
        if process.poll() is not None:
            log = log_path.read_text(encoding="utf-8", errors="replace")
            raise AssertionError(f"prometheus exited with {process.returncode}:\n{log}")
        try:
            return requests.get(f"{url}/-/ready", timeout=1).status_code == 200
        except (requests.ConnectionError, requests.Timeout):
            return False

    wait_for(f"prometheus at {url} to be ready", ready, READY_TIMEOUT_SECONDS)


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
