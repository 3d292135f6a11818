"""Prove that secrets, security tokens and signatures never reach logs, metrics or errors."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import requests
import yaml

from exporter.simulator import Fault, SimulatedAccount, Simulator
from tests.test_cli import _free_port

AK = "5ec0a7e5ec0a7e5ec0a7e5ec0a7e5ec0"
SK = "sk-VERY-SECRET-3f1c9a7b2d"
TOKEN = "sts-TOKEN-SECRET-8e2a4c6f"


def _config(tmp_path: Path, sim: Simulator, **extra: object) -> Path:
    data = {
        "accounts": [
            {
                "name": "sts",
                "access_key_id": AK,
                "secret_access_key": SK,
                "security_token": TOKEN,
                "regions": ["bj", "gz", "su"],
                "endpoint": sim.endpoint,
                **extra,
            }
        ],
        "http": {"initial_backoff": "10ms", "max_attempts": 2},
        "refresh": {"interval": "1s", "max_staleness": "1m"},
    }
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump(data))
    return path


def _assert_clean(text: str, signatures: set[str], where: str) -> None:
    for secret in (SK, TOKEN, *signatures):
        assert secret not in text, f"a secret reached {where}"


def test_no_secret_token_or_signature_in_debug_logs_metrics_or_errors(tmp_path: Path) -> None:
    account = SimulatedAccount(AK, SK, security_token=TOKEN, images={"bj": {"Custom": 3}})
    with Simulator([account]) as sim:
        sim.add_fault(Fault("error", status=400, code="SignatureDoesNotMatch", region="gz"))
        sim.add_fault(Fault("error", status=503, code="ServiceUnavailable", region="bj", times=1))
        sim.add_fault(Fault("html", status=502, region="su"))
        port = _free_port()
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "exporter",
                f"--config.file={_config(tmp_path, sim)}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=debug",
            ],
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            time.sleep(2.5)
            url = f"http://127.0.0.1:{port}"
            pages = [
                requests.get(f"{url}{path}", timeout=5).text
                for path in ("/metrics", "/readyz", "/")
            ]
        finally:
            process.send_signal(signal.SIGTERM)
            _, logs = process.communicate(timeout=5)
        requests_seen = sim.requests

    signatures = {r.headers["authorization"].rsplit("/", 1)[1] for r in requests_seen}
    assert len(signatures) > 5 and all(
        r.headers.get("x-bce-security-token") == TOKEN for r in requests_seen
    )
    assert "SignatureDoesNotMatch" in logs and "level=debug" in logs, "the failures were logged"
    _assert_clean(logs, signatures, "the logs")
    for page in pages:
        _assert_clean(page, signatures, "an HTTP page")


def test_config_check_output_never_shows_secrets(tmp_path: Path) -> None:
    with Simulator([]) as sim:
        path = _config(tmp_path, sim, endpoint=SK, quotas={"Custom": TOKEN})
    for args in (["--config.check"], ["--config.check", "--log.level=debug"]):
        result = subprocess.run(
            [sys.executable, "-m", "exporter", f"--config.file={path}", *args],
            capture_output=True,
            text=True,
            timeout=20,
        )
        assert result.returncode == 1 and "accounts[0].endpoint" in result.stderr
        _assert_clean(result.stdout + result.stderr, set(), "--config.check output")
