"""Drive one region through every fault while another stays healthy; nothing may leak across."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from exporter.app import Exporter
from exporter.config import parse_config
from exporter.simulator import Fault, Simulator
from tests.conftest import (
    AK,
    SK,
    Samples,
    expected_counts,
    image_counts,
    refresh_all,
    scrape,
    value,
)

DATASET_A = {"System": 1500, "Custom": 12, "Sharing": 2}
DATASET_B = {"System": 1400, "Custom": 15, "Sharing": 1}
HTTP = {
    "max_attempts": 2,
    "initial_backoff": "10ms",
    "max_backoff": "20ms",
    "read_timeout": "500ms",
}

# (fault on page 2 of region bj's `All` listing, the `code` its failed requests are counted as)
FAULTS: list[tuple[Fault, str]] = [
    (Fault("reset"), "connection"),
    (Fault("latency", delay=0.8), "timeout"),
    (Fault("slow_body", delay=4.0), "timeout"),
    (Fault("error", status=500, code="InternalError"), "InternalError"),
    (Fault("html", status=502), "http_502"),
    (Fault("error", status=503, code="ServiceUnavailable"), "ServiceUnavailable"),
    (Fault("empty", status=504), "http_504"),
    (Fault("throttle"), "throttled"),
    (Fault("throttle", retry_after=0.05), "throttled"),
    (Fault("error", status=400, code="RequestRateLimitExceeded"), "throttled"),
    (Fault("html", status=200), "invalid_response"),
    (Fault("empty", status=200), "invalid_response"),
    (Fault("malformed"), "invalid_response"),
    (Fault("truncated"), "invalid_response"),
    (Fault("not_a_list"), "invalid_response"),
    (Fault("bad_image"), "invalid_response"),
    (Fault("wrong_types"), "invalid_response"),
    (Fault("marker_loop"), "invalid_response"),
    (Fault("missing_next_marker"), "invalid_response"),
    (Fault("duplicate_image"), "invalid_response"),
    (Fault("oversized_page"), "invalid_response"),
    (Fault("huge_body"), "invalid_response"),
    (Fault("error", status=400, code="SignatureDoesNotMatch"), "SignatureDoesNotMatch"),
    (Fault("error", status=403, code="InvalidAccessKeyId"), "InvalidAccessKeyId"),
    (Fault("error", status=403, code="AccessDenied"), "AccessDenied"),
    (Fault("error", status=400, code="RequestExpired"), "RequestExpired"),
]


def _exporter(sim: Simulator, endpoint: str | None = None, **refresh: Any) -> Exporter:
    account = {
        "access_key_id": AK,
        "secret_access_key": SK,
        "endpoint": sim.endpoint,
    }
    data = {
        "accounts": [
            {**account, "name": "faulty", "regions": ["bj"], "endpoint": endpoint or sim.endpoint},
            {**account, "name": "healthy", "regions": ["gz"]},
        ],
        "http": HTTP,
        "refresh": {"timeout": "2s", **refresh},
    }
    return Exporter(parse_config(data, environ={}))


@pytest.fixture
def sim(simulator: Simulator) -> Iterator[Simulator]:
    simulator.set_images(AK, "bj", DATASET_A)
    yield simulator


def _labels(account: str, region: str) -> dict[str, str]:
    return {"account": account, "region": region}


@pytest.mark.parametrize(("fault", "code"), FAULTS, ids=[f"{f.kind}-{c}" for f, c in FAULTS])
def test_fault_keeps_old_data_isolates_the_region_and_recovers(
    sim: Simulator, fault: Fault, code: str
) -> None:
    exporter = _exporter(sim)
    refresh_all(exporter)
    good = scrape(exporter)
    healthy_before = image_counts(good, "gz")
    sim.set_images(AK, "bj", DATASET_B)
    sim.add_fault(Fault(**{**fault.__dict__, "region": "bj", "image_type": "All", "page": 2}))

    refresh_all(exporter, timeout=2.0)
    failed = scrape(exporter)

    assert value(failed, "bce_bcc_up", **_labels("faulty", "bj")) == 0
    assert image_counts(failed, "bj") == image_counts(good, "bj"), "nothing half-updated"
    errors = value(
        failed,
        "bce_bcc_api_errors_total",
        **_labels("faulty", "bj"),
        operation="ListImages",
        code=code,
    )
    assert errors is not None and errors >= 1, f"errors counted under code={code}"
    assert value(failed, "bce_bcc_up", **_labels("healthy", "gz")) == 1
    assert image_counts(failed, "gz") == healthy_before

    sim.clear_faults()
    refresh_all(exporter)
    recovered = scrape(exporter)
    assert value(recovered, "bce_bcc_up", **_labels("faulty", "bj")) == 1
    assert image_counts(recovered, "bj") == expected_counts(sim, "bj", exporter.config)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _assert_only_faulty_failed_with_connection_errors(samples: Samples) -> None:
    assert value(samples, "bce_bcc_up", **_labels("faulty", "bj")) == 0
    labels = {**_labels("faulty", "bj"), "operation": "ListImages"}
    errors = value(samples, "bce_bcc_api_errors_total", **labels, code="connection")
    assert errors is not None and errors >= 2, "retried once, then failed"
    assert errors == value(samples, "bce_bcc_api_requests_total", **labels)
    assert value(samples, "bce_bcc_up", **_labels("healthy", "gz")) == 1


def test_connection_refused_marks_only_that_target_down(sim: Simulator) -> None:
    exporter = _exporter(sim, endpoint=f"http://127.0.0.1:{_closed_port()}/{{region}}")

    refresh_all(exporter)

    _assert_only_faulty_failed_with_connection_errors(scrape(exporter))


def test_dns_failure_is_a_connection_error(
    sim: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Resolution is answered in-process: tests send nothing to a real name server.
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "bcc.bj.unresolvable.test":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    exporter = _exporter(sim, endpoint="http://bcc.{region}.unresolvable.test")

    refresh_all(exporter)

    _assert_only_faulty_failed_with_connection_errors(scrape(exporter))


@pytest.mark.parametrize("offset", [-3600.0, 2 * 3600.0])
def test_a_skewed_clock_is_measured_and_corrected(sim: Simulator, offset: float) -> None:
    sim.clock_offset = offset
    exporter = _exporter(sim)
    sim.clear_requests()

    refresh_all(exporter)
    samples = scrape(exporter)

    for account, region in (("faulty", "bj"), ("healthy", "gz")):
        assert value(samples, "bce_bcc_up", **_labels(account, region)) == 1
        skew = value(samples, "bce_bcc_clock_skew_seconds", **_labels(account, region))
        assert skew is not None and abs(skew - offset) < 2
    expired = [r for r in sim.requests if r.code == "RequestExpired"]
    assert 2 <= len(expired) <= 2 * len(exporter.config.image_types)

    sim.clear_requests()
    refresh_all(exporter)
    assert all(r.status == 200 for r in sim.requests), "later requests are signed on API time"


def test_without_skew_a_request_expired_error_is_not_retried_blindly(sim: Simulator) -> None:
    sim.add_fault(Fault("error", status=400, code="RequestExpired", region="bj"))
    exporter = _exporter(sim)
    sim.clear_requests()

    refresh_all(exporter)

    assert len([r for r in sim.requests if r.region == "bj" and r.image_type == "All"]) == 1
    assert exporter.targets[0].outcome is not None and not exporter.targets[0].outcome.up


def test_a_wrong_secret_gets_the_real_signature_error(sim: Simulator) -> None:
    data = {
        "accounts": [
            {
                "name": "wrong",
                "access_key_id": AK,
                "secret_access_key": "not-the-secret",
                "regions": ["bj"],
                "endpoint": sim.endpoint,
            }
        ],
        "http": HTTP,
    }
    exporter = Exporter(parse_config(data, environ={}))

    refresh_all(exporter)
    samples = scrape(exporter)

    labels = {**_labels("wrong", "bj"), "operation": "ListImages"}
    errors = value(samples, "bce_bcc_api_errors_total", **labels, code="SignatureDoesNotMatch")
    sent = value(samples, "bce_bcc_api_requests_total", **labels)
    assert errors is not None and sent is not None and errors >= 1
    assert errors == sent, "signature errors are not retried"
    assert sent <= len(exporter.config.image_types)


def _trickling_server(stop: threading.Event, body_too: bool) -> tuple[socket.socket, int]:
    """Answer every connection one byte every 0.2 s: headers, then maybe a body, for ever."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.2)

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # closed by the test
            threading.Thread(target=trickle, args=(conn,), daemon=True).start()

    def trickle(conn: socket.socket) -> None:
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        if body_too:
            conn.sendall(head + b"Content-Length: 100000\r\n\r\n")
            head = b'{"images": [' + b" " * 99_000
        with contextlib.suppress(OSError):
            for byte in head:
                if stop.wait(0.2):
                    break
                conn.sendall(bytes([byte]))
        conn.close()

    threading.Thread(target=serve, daemon=True).start()
    return server, int(server.getsockname()[1])


@pytest.mark.parametrize("body_too", [False, True], ids=["headers", "body"])
def test_a_trickling_answer_is_cut_at_the_refresh_deadline(sim: Simulator, body_too: bool) -> None:
    stop = threading.Event()
    server, port = _trickling_server(stop, body_too)
    try:
        exporter = _exporter(sim, endpoint=f"http://127.0.0.1:{port}/{{region}}", timeout="1s")
        started = time.monotonic()
        refresh_all(exporter, timeout=1.0)
        elapsed = time.monotonic() - started
        samples = scrape(exporter)
    finally:
        stop.set()
        server.close()
    assert elapsed < 2.0, f"the refresh took {elapsed:.1f}s against a 1 s deadline"
    assert value(samples, "bce_bcc_up", **_labels("faulty", "bj")) == 0
    labels = {**_labels("faulty", "bj"), "operation": "ListImages"}
    assert value(samples, "bce_bcc_api_errors_total", **labels, code="timeout")
