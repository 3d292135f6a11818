"""Test the simulator over HTTPS: signed requests, the official SDK, distrust and the CLI."""

from __future__ import annotations

import re
import ssl
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit

import baidubce.protocol
import pytest
import requests
import trustme
from baidubce.auth.bce_credentials import BceCredentials
from baidubce.bce_client_configuration import BceClientConfiguration
from baidubce.services.bcc.bcc_client import BccClient

from exporter.app import Exporter
from exporter.config import parse_config
from exporter.signer import Credentials, authorization, format_timestamp
from exporter.simulator import SimulatedAccount, Simulator
from tests.conftest import refresh_all

AK = "5a5a5a5a6b6b6b6b7c7c7c7c8d8d8d8d"
SK = "0f0f0f0f1e1e1e1e2d2d2d2d3c3c3c3c"
REPO = Path(__file__).resolve().parents[1]
LOOPBACK = "127.0.0.1"


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    """Return a throwaway certificate authority."""
    return trustme.CA()


@pytest.fixture(scope="module")
def pem_files(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Write the CA, and a loopback certificate with its key, as PEM files."""
    folder = tmp_path_factory.mktemp("tls")
    cert = ca.issue_cert(LOOPBACK)
    files = {"ca": folder / "ca.pem", "cert": folder / "cert.pem", "key": folder / "key.pem"}
    ca.cert_pem.write_to_path(str(files["ca"]))
    cert.cert_chain_pems[0].write_to_path(str(files["cert"]))
    cert.private_key_pem.write_to_path(str(files["key"]))
    return files


@pytest.fixture
def tls_sim(pem_files: dict[str, Path]) -> Iterator[Simulator]:
    """Serve one account over HTTPS with a certificate for 127.0.0.1."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pem_files["cert"], pem_files["key"])
    account = SimulatedAccount(AK, SK, images={"bj": {"System": 7, "Custom": 5}})
    with Simulator([account], ssl_context=context) as sim:
        yield sim


def signed_get(base: str, ca_file: Path | bool, params: dict[str, str]) -> requests.Response:
    """Send a GET signed with the project's signer, verifying the server against `ca_file`."""
    path = "/bj/v2/image"
    stamp = format_timestamp(datetime.now(timezone.utc))
    headers = {"host": urlsplit(base).netloc, "x-bce-date": stamp}
    headers["authorization"] = authorization(
        Credentials(AK, SK), "GET", path, params, headers, stamp
    )
    verify = str(ca_file) if isinstance(ca_file, Path) else ca_file
    return requests.get(base + path, params=params, headers=headers, timeout=5, verify=verify)


def test_url_and_endpoint_say_https(tls_sim: Simulator) -> None:
    assert tls_sim.url == f"https://{LOOPBACK}:{tls_sim.port}"
    assert tls_sim.endpoint.startswith("https://") and tls_sim.endpoint.endswith("/{region}")


def test_signed_request_is_served_over_tls_and_keeps_paging(
    tls_sim: Simulator, pem_files: dict[str, Path]
) -> None:
    first = signed_get(tls_sim.url, pem_files["ca"], {"maxKeys": "8"})
    second = signed_get(
        tls_sim.url, pem_files["ca"], {"maxKeys": "8", "marker": first.json()["nextMarker"]}
    )

    assert first.status_code == second.status_code == 200
    assert len(first.json()["images"]) + len(second.json()["images"]) == 12
    assert [r.status for r in tls_sim.requests] == [200, 200]


def test_client_that_distrusts_the_certificate_fails_and_the_server_goes_on(
    tls_sim: Simulator, pem_files: dict[str, Path]
) -> None:
    with pytest.raises(requests.exceptions.SSLError):
        signed_get(tls_sim.url, True, {})

    assert signed_get(tls_sim.url, pem_files["ca"], {}).status_code == 200
    assert len(tls_sim.requests) == 1, "the refused handshake never reached the API"


def test_plain_http_to_the_tls_port_gets_no_answer(tls_sim: Simulator) -> None:
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"http://{LOOPBACK}:{tls_sim.port}/bj/v2/image", timeout=5)

    assert tls_sim.requests == []


def test_official_sdk_lists_over_https_trusting_the_ca(
    tls_sim: Simulator, pem_files: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The SDK uses Python's default TLS context, which reads the CA file from SSL_CERT_FILE.
    monkeypatch.setenv("SSL_CERT_FILE", str(pem_files["ca"]))
    config = BceClientConfiguration(
        credentials=BceCredentials(AK, SK),
        endpoint=f"{LOOPBACK}:{tls_sim.port}",
        protocol=baidubce.protocol.HTTPS,
    )

    response = BccClient(config).list_images(max_keys=100)

    assert len(response.images) == 12 and not response.is_truncated


def test_cli_serves_https_with_cert_and_key(pem_files: dict[str, Path]) -> None:
    process = start_cli("--tls-cert", str(pem_files["cert"]), "--tls-key", str(pem_files["key"]))
    try:
        line = process.stdout.readline() if process.stdout else ""
        found = re.search(r"endpoint=(https://127\.0\.0\.1:\d+)/\{region\}", line)
        assert found, line
        response = requests.get(
            f"{found.group(1)}/bj/v2/image", verify=str(pem_files["ca"]), timeout=5
        )
        assert response.status_code == 400
        assert response.json()["code"] == "InvalidHTTPAuthHeader"
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0


@pytest.mark.parametrize("flag", ["--tls-cert", "--tls-key"])
def test_cli_wants_cert_and_key_together(flag: str, pem_files: dict[str, Path]) -> None:
    process = start_cli(flag, str(pem_files["cert"]))
    _, stderr = process.communicate(timeout=10)

    assert process.returncode == 2
    assert "--tls-cert and --tls-key go together" in stderr


def test_cli_reports_an_unreadable_key(pem_files: dict[str, Path], tmp_path: Path) -> None:
    broken = tmp_path / "broken.pem"
    broken.write_text("not a key\n")
    process = start_cli("--tls-cert", str(pem_files["cert"]), "--tls-key", str(broken))
    _, stderr = process.communicate(timeout=10)

    assert process.returncode == 2
    assert "cannot load them" in stderr


def start_cli(*flags: str) -> subprocess.Popen[str]:
    """Start the simulator's command line on a free loopback port."""
    return subprocess.Popen(
        [sys.executable, "-m", "exporter.simulator.cli", "--listen", f"{LOOPBACK}:0", *flags],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _exporter_over_tls(sim: Simulator, http: dict[str, str]) -> Exporter:
    data = {
        "accounts": [
            {
                "name": "tls",
                "access_key_id": AK,
                "secret_access_key": SK,
                "regions": ["bj"],
                "endpoint": sim.endpoint,
            }
        ],
        "http": {"max_attempts": 1, **http},
    }
    return Exporter(parse_config(data, environ={}))


def test_the_exporter_trusts_a_private_ca_only_when_told(
    tls_sim: Simulator, pem_files: dict[str, Path]
) -> None:
    trusting = _exporter_over_tls(tls_sim, {"ca_file": str(pem_files["ca"])})
    default = _exporter_over_tls(tls_sim, {})
    assert tls_sim.url.startswith("https://")

    refresh_all(trusting)
    refresh_all(default)

    up = [exporter.targets[0].outcome for exporter in (trusting, default)]
    assert up[0] is not None and up[0].up
    assert up[1] is not None and not up[1].up and "cannot reach" in (up[1].error or "")
