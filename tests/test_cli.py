"""Run the `bcc-image-exporter` command as a user would, against the simulated API."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml

from exporter import __version__
from exporter.cli import parse_listen_address
from exporter.simulator import Fault, Simulator
from tests.conftest import AK, SK, expected_counts, image_counts, make_config, parse_samples, value

COMMAND = [sys.executable, "-m", "exporter"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _write_config(tmp_path: Path, sim: Simulator, **extra: object) -> Path:
    data = {
        "accounts": [
            {
                "name": "test",
                "access_key_id": AK,
                "secret_access_key": SK,
                "regions": ["bj", "gz"],
                "endpoint": sim.endpoint,
            }
        ],
        **extra,
    }
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def running(tmp_path: Path, simulator: Simulator) -> Iterator[tuple[subprocess.Popen[str], str]]:
    config = _write_config(tmp_path, simulator)
    port = _free_port()
    process = subprocess.Popen(
        [
            *COMMAND,
            f"--config.file={config}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=debug",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url)
        yield process, url
    finally:
        process.kill()
        process.wait()


def _wait_ready(url: str) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    raise AssertionError("the exporter did not become ready within 15 s")


def test_the_command_serves_the_simulators_counts(
    running: tuple[subprocess.Popen[str], str], simulator: Simulator
) -> None:
    _, url = running
    samples = parse_samples(requests.get(f"{url}/metrics", timeout=5).text)
    config = make_config(simulator, ["bj", "gz"])

    for region in ("bj", "gz"):
        assert image_counts(samples, region) == expected_counts(simulator, region, config)
    assert (
        value(
            samples,
            "bce_bcc_exporter_build_info",
            version=__version__,
            python_version=".".join(map(str, sys.version_info[:3])),
        )
        == 1
    )
    assert any(name == "process_resident_memory_bytes" for name, _ in samples)


def test_sigterm_stops_the_exporter_within_two_seconds(
    running: tuple[subprocess.Popen[str], str],
) -> None:
    process, _ = running
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    code = process.wait(timeout=5)
    assert code == 0
    assert time.monotonic() - started < 2.0


def test_debug_logs_never_contain_secrets_or_signatures(
    tmp_path: Path, simulator: Simulator
) -> None:
    simulator.add_fault(Fault("error", status=400, code="SignatureDoesNotMatch", region="gz"))
    simulator.add_fault(
        Fault("error", status=503, code="ServiceUnavailable", region="bj", times=1)
    )
    config = _write_config(tmp_path, simulator, http={"initial_backoff": "10ms"})
    port = _free_port()
    process = subprocess.Popen(
        [
            *COMMAND,
            f"--config.file={config}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=debug",
            "--log.format=json",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(2.0)
        metrics = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    finally:
        process.send_signal(signal.SIGTERM)
        _, logs = process.communicate(timeout=5)

    signatures = {r.headers["authorization"].rsplit("/", 1)[1] for r in simulator.requests}
    assert "SignatureDoesNotMatch" in logs and "retrying" in logs, "the failures were logged"
    for secret in (SK, *signatures):
        assert secret not in logs
        assert secret not in metrics


def test_config_check_reports_every_problem_and_fails(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "accounts:\n  - name: a\n    access_key_id: x\n    regions: [mars]\n"
        "refresh: {mode: never}\npage_size: 0\n"
    )
    result = subprocess.run(
        [*COMMAND, f"--config.file={bad}", "--config.check"], capture_output=True, text=True
    )
    assert result.returncode == 1
    for path in ("accounts[0]:", "accounts[0].regions[0]:", "refresh.mode:", "page_size:"):
        assert path in result.stderr


def test_config_check_accepts_the_example_config() -> None:
    example = Path(__file__).parent.parent / "config.example.yml"
    result = subprocess.run(
        [*COMMAND, f"--config.file={example}", "--config.check"],
        capture_output=True,
        text=True,
        env={"BCE_ACCESS_KEY_ID": "ak", "BCE_SECRET_ACCESS_KEY": "sk", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    assert "OK, 1 account, 2 targets" in result.stdout


def test_version_flag_prints_the_version() -> None:
    result = subprocess.run([*COMMAND, "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and __version__ in result.stdout


def test_a_busy_port_is_reported_clearly(tmp_path: Path, simulator: Simulator) -> None:
    config = _write_config(tmp_path, simulator)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        result = subprocess.run(
            [*COMMAND, f"--config.file={config}", f"--web.listen-address=127.0.0.1:{port}"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    assert result.returncode == 1 and f"cannot listen on 127.0.0.1:{port}" in result.stderr


@pytest.mark.parametrize(
    ("address", "expected"),
    [(":10041", ("0.0.0.0", 10041)), ("127.0.0.1:9", ("127.0.0.1", 9)), ("[::1]:80", ("::1", 80))],
)
def test_listen_addresses_are_parsed(address: str, expected: tuple[str, int]) -> None:
    assert parse_listen_address(address) == expected


@pytest.mark.parametrize("address", ["10041", "host:", "host:99999", "host:http"])
def test_bad_listen_addresses_are_refused(address: str) -> None:
    with pytest.raises(ValueError, match="HOST:PORT"):
        parse_listen_address(address)


def test_sigterm_during_a_slow_refresh_still_stops_within_two_seconds(
    tmp_path: Path, simulator: Simulator
) -> None:
    simulator.add_fault(Fault("latency", delay=8.0))
    config = _write_config(tmp_path, simulator)
    port = _free_port()
    process = subprocess.Popen(
        [*COMMAND, f"--config.file={config}", f"--web.listen-address=127.0.0.1:{port}"],
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
            break
        except requests.ConnectionError:
            time.sleep(0.05)
    time.sleep(0.5)
    # Requests are logged once answered: none yet means the first refresh is in flight.
    assert simulator.requests == []

    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    code = process.wait(timeout=10)

    assert code == 0 and time.monotonic() - started < 2.0
