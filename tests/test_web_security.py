"""Attack a real exporter over TLS and plain HTTP on loopback: auth, certificates, slow clients."""

from __future__ import annotations

import base64
import logging
import select
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bcrypt
import pytest
import requests
import trustme
import yaml

from exporter.app import Exporter
from exporter.config import load_config
from exporter.connections import Limits
from exporter.logs import JsonFormatter, LogfmtFormatter
from exporter.simulator import Simulator
from exporter.web import HttpServer, make_app
from exporter.webconfig import WebConfig, load_web_config
from tests.conftest import AK, SK, make_config

USER = "prometheus"
PASSWORD = "correct horse battery staple"
HASH = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()
FAST = Limits(handshake_timeout=0.5, read_timeout=0.5, write_timeout=2.0)


@dataclass
class Pki:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, written as files."""

    ca: trustme.CA
    directory: Path
    ca_file: str
    client: tuple[str, str]


def _write_leaf(leaf: trustme.LeafCert, directory: Path, name: str) -> tuple[str, str]:
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    for i, blob in enumerate(leaf.cert_chain_pems):
        blob.write_to_path(str(cert), append=i > 0)
    leaf.private_key_pem.write_to_path(str(key))
    return str(cert), str(key)


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    ca = trustme.CA()
    _write_leaf(ca.issue_cert("127.0.0.1", "localhost"), tmp_path, "server")
    ca.cert_pem.write_to_path(str(tmp_path / "ca.crt"))
    client = _write_leaf(ca.issue_cert("scraper.example"), tmp_path, "client")
    return Pki(ca, tmp_path, str(tmp_path / "ca.crt"), client)


@pytest.fixture
def exporter(simulator: Simulator) -> Iterator[Exporter]:
    exporter = Exporter(make_config(simulator, ["bj"]))
    yield exporter
    exporter.stop()


def _web_config(directory: Path, **sections: Any) -> WebConfig:
    path = directory / "web.yml"
    path.write_text(yaml.safe_dump(sections))
    return load_web_config(path)


def _tls(**extra: Any) -> dict[str, Any]:
    return {"cert_file": "server.crt", "key_file": "server.key", **extra}


@contextmanager
def _serving(
    exporter: Exporter, config: WebConfig | None = None, limits: Limits = FAST
) -> Iterator[tuple[str, int]]:
    server = HttpServer(
        make_app(exporter, lifecycle=True), "127.0.0.1", 0, web_config=config, limits=limits
    )
    server.start()
    scheme = "https" if config is not None and config.tls is not None else "http"
    try:
        yield f"{scheme}://127.0.0.1:{server.port}", server.port
    finally:
        server.stop()


def _closed_within(sock: socket.socket, seconds: float) -> bool:
    """Tell whether the server closes the connection within `seconds`."""
    ready, _, _ = select.select([sock], [], [], seconds)
    if not ready:
        return False
    try:
        return sock.recv(1024) == b""
    except (ConnectionResetError, ssl.SSLError):
        return True


def _status(port: int, head: bytes) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(head)
        response = b""
        while chunk := sock.recv(65536):
            response += chunk
    return int(response.split(b" ", 2)[1])


def test_the_right_password_gets_200_and_a_wrong_or_missing_one_401(
    exporter: Exporter, pki: Pki
) -> None:
    config = _web_config(pki.directory, tls_server_config=_tls(), basic_auth_users={USER: HASH})
    with _serving(exporter, config) as (url, _):
        ok = requests.get(f"{url}/metrics", auth=(USER, PASSWORD), verify=pki.ca_file, timeout=5)
        wrong = requests.get(f"{url}/metrics", auth=(USER, "guess"), verify=pki.ca_file, timeout=5)
        stranger = requests.get(
            f"{url}/metrics", auth=("root", PASSWORD), verify=pki.ca_file, timeout=5
        )
        missing = requests.get(f"{url}/metrics", verify=pki.ca_file, timeout=5)

    assert ok.status_code == 200 and "bce_bcc_exporter_build_info" in ok.text
    assert [r.status_code for r in (wrong, stranger, missing)] == [401, 401, 401]
    assert missing.headers["WWW-Authenticate"].startswith('Basic realm="bcc-image-exporter"')
    assert "bce_bcc" not in wrong.text


def test_every_route_asks_for_the_password(exporter: Exporter, tmp_path: Path) -> None:
    config = _web_config(tmp_path, basic_auth_users={USER: HASH})
    with _serving(exporter, config) as (url, _):
        statuses = {
            path: requests.request(method, f"{url}{path}", timeout=5).status_code
            for method, path in [
                ("GET", "/"),
                ("GET", "/metrics"),
                ("GET", "/healthz"),
                ("GET", "/readyz"),
                ("POST", "/-/reload"),
                ("GET", "/nope"),
            ]
        }
        healthz = requests.get(f"{url}/healthz", auth=(USER, PASSWORD), timeout=5)

    assert set(statuses.values()) == {401}, statuses
    assert healthz.status_code == 200


def test_a_verified_password_is_not_checked_with_bcrypt_again(
    exporter: Exporter, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[bytes] = []
    checkpw = bcrypt.checkpw

    def counting(password: bytes, hashed: bytes) -> bool:
        calls.append(hashed)
        return checkpw(password, hashed)

    monkeypatch.setattr(bcrypt, "checkpw", counting)
    config = _web_config(tmp_path, basic_auth_users={USER: HASH})
    with _serving(exporter, config) as (url, _):
        for _ in range(3):
            assert requests.get(f"{url}/healthz", auth=(USER, PASSWORD), timeout=5).ok
        right = len(calls)
        for _ in range(2):
            requests.get(f"{url}/healthz", auth=(USER, "wrong"), timeout=5)
        requests.get(f"{url}/healthz", auth=("nobody", PASSWORD), timeout=5)

    assert right == 1, "three scrapes, one bcrypt check"
    assert len(calls) == 4, "failures are never cached; an unknown user costs a check too"


def test_plain_http_to_the_tls_port_fails(exporter: Exporter, pki: Pki) -> None:
    config = _web_config(pki.directory, tls_server_config=_tls())
    with _serving(exporter, config) as (_, port):
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
        https = requests.get(f"https://127.0.0.1:{port}/healthz", verify=pki.ca_file, timeout=5)

    assert https.status_code == 200


def test_client_certificates_are_required_from_the_trusted_ca_only(
    exporter: Exporter, pki: Pki
) -> None:
    stranger = _write_leaf(trustme.CA().issue_cert("scraper.example"), pki.directory, "stranger")
    tls = _tls(client_auth_type="RequireAndVerifyClientCert", client_ca_file="ca.crt")
    config = _web_config(pki.directory, tls_server_config=tls)
    with _serving(exporter, config) as (url, _):
        trusted = requests.get(f"{url}/healthz", cert=pki.client, verify=pki.ca_file, timeout=5)
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{url}/healthz", verify=pki.ca_file, timeout=5)
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{url}/healthz", cert=stranger, verify=pki.ca_file, timeout=5)

    assert trusted.status_code == 200


def test_client_allowed_sans_refuse_certificates_naming_someone_else(
    exporter: Exporter, pki: Pki
) -> None:
    other = _write_leaf(pki.ca.issue_cert("intruder.example"), pki.directory, "other")
    tls = _tls(
        client_auth_type="RequireAndVerifyClientCert",
        client_ca_file="ca.crt",
        client_allowed_sans=["scraper.example"],
    )
    config = _web_config(pki.directory, tls_server_config=tls)
    with _serving(exporter, config) as (url, _):
        allowed = requests.get(f"{url}/healthz", cert=pki.client, verify=pki.ca_file, timeout=5)
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{url}/healthz", cert=other, verify=pki.ca_file, timeout=5)

    assert allowed.status_code == 200


def _negotiate(port: int, ca_file: str, low: ssl.TLSVersion, high: ssl.TLSVersion) -> str:
    context = ssl.create_default_context(cafile=str(ca_file))
    context.minimum_version, context.maximum_version = low, high
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as conn,
    ):
        return str(conn.version())


def test_min_and_max_version_are_honoured(exporter: Exporter, pki: Pki) -> None:
    v12, v13 = ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3
    only13 = _web_config(pki.directory, tls_server_config=_tls(min_version="TLS13"))
    only12 = _web_config(pki.directory, tls_server_config=_tls(max_version="TLS12"))

    with _serving(exporter, only13) as (_, port):
        assert _negotiate(port, pki.ca_file, v12, v13) == "TLSv1.3"
        with pytest.raises(ssl.SSLError):
            _negotiate(port, pki.ca_file, v12, v12)
    with _serving(exporter, only12) as (_, port):
        assert _negotiate(port, pki.ca_file, v12, v13) == "TLSv1.2"
        with pytest.raises(ssl.SSLError):
            _negotiate(port, pki.ca_file, v13, v13)


def test_a_renewed_certificate_is_used_without_a_restart(exporter: Exporter, pki: Pki) -> None:
    config = _web_config(pki.directory, tls_server_config=_tls())
    renewed = trustme.CA()
    renewed.cert_pem.write_to_path(str(pki.directory / "renewed-ca.crt"))
    with _serving(exporter, config) as (url, _):
        before = requests.get(f"{url}/healthz", verify=pki.ca_file, timeout=5)
        _write_leaf(renewed.issue_cert("127.0.0.1"), pki.directory, "server")
        after = requests.get(
            f"{url}/healthz", verify=str(pki.directory / "renewed-ca.crt"), timeout=5
        )

    assert before.status_code == 200 and after.status_code == 200


@pytest.mark.parametrize("use_tls", [False, True], ids=["plain", "tls"])
def test_a_stalled_client_does_not_block_a_scrape_and_is_cut_off(
    exporter: Exporter, pki: Pki, use_tls: bool
) -> None:
    config = _web_config(pki.directory, tls_server_config=_tls() if use_tls else {})
    with (
        _serving(exporter, config) as (url, port),
        socket.create_connection(("127.0.0.1", port)) as stalled,
    ):
        started = time.monotonic()
        scrape = requests.get(f"{url}/metrics", verify=pki.ca_file, timeout=5)
        scraped = time.monotonic() - started
        cut = _closed_within(stalled, 3.0)
        waited = time.monotonic() - started

    assert scrape.status_code == 200 and scraped < FAST.read_timeout
    assert cut and waited < FAST.read_timeout + 1.0


def test_a_client_dribbling_its_headers_is_cut_off(exporter: Exporter) -> None:
    with (
        _serving(exporter) as (_, port),
        socket.create_connection(("127.0.0.1", port)) as sock,
    ):
        started = time.monotonic()
        sock.sendall(b"GET /metrics HTTP/1.1\r\nX-Slow: ")
        cut = False
        for _ in range(60):  # three seconds at most, six times the read timeout
            if _closed_within(sock, 0.05):
                cut = True
                break
            try:
                sock.sendall(b"a")
            except OSError:
                cut = True
                break
        elapsed = time.monotonic() - started

    assert cut and elapsed < FAST.read_timeout + 1.0


@pytest.mark.parametrize(
    "headers",
    [
        [("X-Big", "a" * 70_000)],
        [(f"X-Part-{i}", "a" * 7_000) for i in range(10)],
        [(f"X-Many-{i}", "a") for i in range(150)],
    ],
    ids=["one-long-header", "total-over-64KiB", "too-many-headers"],
)
def test_oversize_request_heads_get_431(
    exporter: Exporter, headers: list[tuple[str, str]]
) -> None:
    lines = "".join(f"{name}: {value}\r\n" for name, value in headers)
    head = f"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n{lines}\r\n".encode()
    with _serving(exporter) as (url, port):
        assert _status(port, head) == 431
        assert requests.get(f"{url}/healthz", timeout=5).status_code == 200


def test_a_long_request_line_gets_414(exporter: Exporter) -> None:
    with _serving(exporter) as (_, port):
        assert _status(port, b"GET /" + b"a" * 10_000 + b" HTTP/1.1\r\n\r\n") == 414


def test_connections_over_the_limit_are_closed_at_once(exporter: Exporter) -> None:
    limits = Limits(read_timeout=1.0, connections=2)
    with _serving(exporter, limits=limits) as (url, port):
        stalled = [socket.create_connection(("127.0.0.1", port)) for _ in range(2)]
        time.sleep(0.2)
        with socket.create_connection(("127.0.0.1", port)) as extra:
            refused = _closed_within(extra, 0.5)
        for sock in stalled:
            assert _closed_within(sock, 2.0)
            sock.close()
        time.sleep(0.1)
        after = requests.get(f"{url}/healthz", timeout=5)

    assert refused and after.status_code == 200


def test_stop_cuts_open_connections_within_a_fraction_of_a_second(exporter: Exporter) -> None:
    server = HttpServer(make_app(exporter), "127.0.0.1", 0, limits=Limits(read_timeout=30))
    server.start()
    with socket.create_connection(("127.0.0.1", server.port)) as stalled:
        time.sleep(0.1)
        started = time.monotonic()
        server.stop()
        stopped = time.monotonic() - started

        assert stopped < 0.5
        assert _closed_within(stalled, 0.5)


def test_rate_limit_answers_429_and_configured_headers_are_sent(
    exporter: Exporter, tmp_path: Path
) -> None:
    config = _web_config(
        tmp_path,
        rate_limit={"interval": "1m", "burst": 2},
        http_server_config={"headers": {"X-Frame-Options": "deny"}},
    )
    with _serving(exporter, config) as (url, _):
        responses = [requests.get(f"{url}/healthz", timeout=5) for _ in range(3)]

    assert [r.status_code for r in responses] == [200, 200, 429]
    assert all(r.headers["X-Frame-Options"] == "deny" for r in responses)


def _write_exporter_config(path: Path, sim: Simulator, regions: object) -> None:
    account: dict[str, object] = {"name": "test", "access_key_id": AK, "secret_access_key": SK}
    account |= {"regions": regions, "endpoint": sim.endpoint}
    path.write_text(yaml.safe_dump({"accounts": [account]}))


def test_reload_route_switches_config_or_lists_the_problems(
    tmp_path: Path, simulator: Simulator
) -> None:
    path = tmp_path / "config.yml"
    _write_exporter_config(path, simulator, ["bj"])
    exporter = Exporter(load_config(path), path)
    with _serving(exporter) as (url, _):
        _write_exporter_config(path, simulator, ["bj", "gz"])
        posted = requests.post(f"{url}/-/reload", timeout=10)
        regions = [t.region for t in exporter.targets]
        _write_exporter_config(path, simulator, "bj")
        refused = requests.put(f"{url}/-/reload", timeout=10)
        got = requests.get(f"{url}/-/reload", timeout=5)
    exporter.stop()

    assert posted.status_code == 200 and posted.text == "reloaded\n"
    assert regions == ["bj", "gz"]
    assert refused.status_code == 400 and "accounts[0].regions" in refused.text
    assert [t.region for t in exporter.targets] == ["bj", "gz"], "the previous config stays"
    assert got.status_code == 405 and got.headers["Allow"] == "POST, PUT"


def test_reload_route_without_a_config_file_says_so(exporter: Exporter) -> None:
    with _serving(exporter) as (url, _):
        response = requests.post(f"{url}/-/reload", timeout=5)

    assert response.status_code == 400 and "config file" in response.text


def test_no_password_hash_or_key_reaches_the_logs(
    exporter: Exporter,
    pki: Pki,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    tls = _tls(client_auth_type="VerifyClientCertIfGiven", client_ca_file="ca.crt")
    config = _web_config(pki.directory, tls_server_config=tls, basic_auth_users={USER: HASH})
    with _serving(exporter, config) as (url, port):
        requests.get(f"{url}/metrics", auth=(USER, PASSWORD), verify=pki.ca_file, timeout=5)
        requests.get(f"{url}/metrics", auth=(USER, PASSWORD + "x"), verify=pki.ca_file, timeout=5)
        requests.post(f"{url}/-/reload", auth=(USER, PASSWORD), verify=pki.ca_file, timeout=5)
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{port}/", auth=(USER, PASSWORD), timeout=5)
        with socket.create_connection(("127.0.0.1", port)) as stalled:
            assert _closed_within(stalled, 3.0)
    threading.Event().wait(0.1)

    key_lines = (pki.directory / "server.key").read_text().splitlines()[1:-1]
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    secrets = [PASSWORD, HASH, HASH.split("$")[-1], token, *key_lines]
    records = caplog.records
    text = "\n".join(f.format(r) for r in records for f in (LogfmtFormatter(), JsonFormatter()))
    text += capsys.readouterr().err
    assert any(r.levelno == logging.DEBUG for r in records), "debug logging was on"
    assert not [secret for secret in secrets if secret in text]
