"""Test the simulated BCC API: signatures, paging, datasets, faults, request log and CLI."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta, timezone
from http.client import HTTPConnection
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import baidubce.protocol
import pytest
import requests
from baidubce.auth.bce_credentials import BceCredentials
from baidubce.bce_client_configuration import BceClientConfiguration
from baidubce.exception import BceHttpClientError
from baidubce.http import http_methods
from baidubce.services.bcc.bcc_client import BccClient

from exporter.errors import ConfigError
from exporter.signer import Credentials, authorization, format_timestamp
from exporter.simulator import (
    DEMO_ACCESS_KEY_ID,
    DEMO_SECRET_ACCESS_KEY,
    Fault,
    SimulatedAccount,
    Simulator,
    default_accounts,
)
from exporter.simulator.cli import parse_images
from exporter.simulator.dataset import generate_images
from exporter.simulator.scenario import parse_scenario

AK = "1111222233334444aaaabbbbccccdddd"
SK = "99998888777766665555444433332222"
TOKEN_AK = "7e5f" * 8
TOKEN = "sts-token/abc=="
BJ = {"System": 12, "Custom": 9, "Integration": 2, "Sharing": 3, "EbcSystem": 2, "EbcCustom": 1}
CREDENTIALS = Credentials(AK, SK)
REPO = Path(__file__).resolve().parents[1]
JsonDict = dict[str, Any]


@pytest.fixture
def sim() -> Iterator[Simulator]:
    """Serve one account with a mixed bj, a small gz, and a temporary-credential account."""
    accounts = [
        SimulatedAccount(AK, SK, images={"bj": BJ, "gz": {"System": 2, "Custom": 1}}),
        SimulatedAccount(TOKEN_AK, SK, security_token=TOKEN, images={"bj": {"Custom": 4}}),
    ]
    with Simulator(accounts, seed=3) as simulator:
        yield simulator


def signed_get(
    target: Simulator | str,
    path: str = "/bj/v2/image",
    params: Mapping[str, str] | None = None,
    *,
    credentials: Credentials = CREDENTIALS,
    when: datetime | None = None,
    extra_headers: Mapping[str, str] | None = None,
    signed_headers: list[str] | None = None,
    header_override: str | None = None,
    timeout: float = 5.0,
) -> requests.Response:
    """Send a GET signed with the project's signer to a simulator or a base URL."""
    url = target.url if isinstance(target, Simulator) else target
    params = dict(params or {})
    stamp = format_timestamp(when or datetime.now(timezone.utc))
    headers = {"host": urlsplit(url).netloc, "x-bce-date": stamp, **(extra_headers or {})}
    headers["authorization"] = header_override or authorization(
        credentials, "GET", path, params, headers, stamp, signed_headers=signed_headers
    )
    return requests.get(url + path, params=params, headers=headers, timeout=timeout)


def list_all(sim: Simulator, image_type: str, max_keys: int, region: str = "bj") -> list[JsonDict]:
    """Follow nextMarker until the listing ends and return every image seen."""
    images: list[JsonDict] = []
    params = {"imageType": image_type, "maxKeys": str(max_keys)}
    for _ in range(1000):
        body = signed_get(sim, f"/{region}/v2/image", params).json()
        images.extend(body["images"])
        if not body["isTruncated"]:
            return images
        params["marker"] = body["nextMarker"]
    raise AssertionError("the listing never ended")


def assert_error(response: requests.Response, status: int, code: str) -> None:
    """Check a BCE error reply: status, code, and the request id in body and header."""
    assert response.status_code == status
    body = response.json()
    assert body["code"] == code
    assert body["requestId"] == response.headers["x-bce-request-id"]
    assert body["message"]


def sdk_client(sim: Simulator, access_key_id: str = AK) -> BccClient:
    """Return the official SDK's BCC client aimed at the simulator (host:port endpoint)."""
    config = BceClientConfiguration(
        credentials=BceCredentials(access_key_id, SK),
        endpoint=f"127.0.0.1:{sim.port}",
        protocol=baidubce.protocol.HTTP,
    )
    return BccClient(config)


def sdk_list_all(client: BccClient, **kwargs: Any) -> list[Any]:
    """Page through list_images with the SDK, following nextMarker."""
    images: list[Any] = []
    marker = None
    while True:
        response = client.list_images(marker=marker, **kwargs)
        images.extend(response.images)
        if not response.is_truncated:
            return images
        marker = response.next_marker


# --- the official SDK as an independent client ------------------------------------------


def test_official_sdk_lists_every_image_of_the_all_filter(sim: Simulator) -> None:
    images = sdk_list_all(sdk_client(sim), max_keys=5)

    expected = sim.images(AK, "bj", "All")
    assert [image.id for image in images] == [image["id"] for image in expected]
    assert [image.os_name for image in images] == [image.get("osName") for image in expected]
    assert len(expected) == BJ["System"] + BJ["Custom"] + BJ["Integration"]
    assert all(record.status == 200 for record in sim.requests)
    assert [record.region for record in sim.requests] == ["bj"] * 5


def test_official_sdk_token_is_ignored_by_bcc_client_so_the_token_account_rejects_it(
    sim: Simulator,
) -> None:
    # BccClient never sends BceClientConfiguration.security_token; the header must be passed.
    client = sdk_client(sim, TOKEN_AK)
    with pytest.raises(BceHttpClientError) as rejected:
        client.list_images()
    assert (rejected.value.last_error.status_code, rejected.value.last_error.code) == (
        403,
        "InvalidAccessKeyId",
    )

    response = client._send_request(
        http_methods.GET,
        b"/image",
        headers={b"x-bce-security-token": TOKEN.encode()},
        params={"imageType": "All"},
    )
    assert [image.id for image in response.images] == [i["id"] for i in sim.images(TOKEN_AK, "bj")]


# --- signature checks ------------------------------------------------------------------


def test_correctly_signed_request_is_served_with_date_and_request_id(sim: Simulator) -> None:
    response = signed_get(sim, params={"maxKeys": "3"})

    assert response.status_code == 200
    assert response.headers["Date"]
    assert re.fullmatch(r"[0-9a-f-]{36}", response.headers["x-bce-request-id"])
    assert len(response.json()["images"]) == 3


def test_flipping_one_signature_digit_gives_signature_does_not_match(sim: Simulator) -> None:
    stamp = format_timestamp(datetime.now(timezone.utc))
    headers = {"host": f"127.0.0.1:{sim.port}", "x-bce-date": stamp}
    good = authorization(CREDENTIALS, "GET", "/bj/v2/image", {}, headers, stamp)
    flipped = good[:-1] + ("0" if good[-1] != "0" else "1")

    assert_error(signed_get(sim, header_override=flipped), 400, "SignatureDoesNotMatch")
    assert signed_get(sim, header_override=good).status_code == 200


def test_signature_over_other_parameters_does_not_match(sim: Simulator) -> None:
    stamp = format_timestamp(datetime.now(timezone.utc))
    headers = {"host": f"127.0.0.1:{sim.port}", "x-bce-date": stamp}
    signed_for_system = authorization(
        CREDENTIALS, "GET", "/bj/v2/image", {"imageType": "System"}, headers, stamp
    )
    response = signed_get(sim, params={"imageType": "Custom"}, header_override=signed_for_system)

    assert_error(response, 400, "SignatureDoesNotMatch")


def test_unknown_access_key_gives_403(sim: Simulator) -> None:
    stranger = Credentials("f" * 32, SK)

    assert_error(signed_get(sim, credentials=stranger), 403, "InvalidAccessKeyId")


@pytest.mark.parametrize(
    "header",
    [None, "bce-auth-v1/abc", "Bearer x", "bce-auth-v1/ak/2024-01-01/1800//" + "a" * 64],
)
def test_malformed_authorization_gives_invalid_http_auth_header(
    sim: Simulator, header: str | None
) -> None:
    headers = {"authorization": header} if header else {}
    response = requests.get(sim.url + "/bj/v2/image", headers=headers, timeout=5)

    assert_error(response, 400, "InvalidHTTPAuthHeader")


def test_unsigned_host_is_rejected(sim: Simulator) -> None:
    response = signed_get(sim, signed_headers=["x-bce-date"])

    assert_error(response, 400, "InvalidHTTPAuthHeader")


def test_empty_signed_headers_field_means_the_default_set_plus_x_bce_headers(
    sim: Simulator,
) -> None:
    stamp = format_timestamp(datetime.now(timezone.utc))
    headers = {"host": f"127.0.0.1:{sim.port}", "x-bce-date": stamp}
    names = ["host", "x-bce-date"]  # requests sends no content-* headers on a GET
    full = authorization(
        CREDENTIALS, "GET", "/bj/v2/image", {}, headers, stamp, signed_headers=names
    )
    prefix, _, signature = full.rpartition("/")
    empty_field = prefix.rsplit("/", 1)[0] + "//" + signature

    assert signed_get(sim, header_override=empty_field).status_code == 200


def test_signature_covers_a_decoded_non_ascii_query_value(sim: Simulator) -> None:
    sim.set_images(AK, "bj", {"Custom": 200})
    names = [image["name"] for image in sim.images(AK, "bj", "Custom")]
    custom = next(name for name in names if not name.isascii())
    response = signed_get(sim, params={"imageType": "Custom", "imageName": custom})

    assert response.status_code == 200
    assert [image["name"] for image in response.json()["images"]] == [custom]


@pytest.mark.parametrize(("age", "status"), [(1700, 200), (1900, 400), (-200, 200), (-400, 400)])
def test_request_is_valid_from_300s_before_its_timestamp_until_expiration(
    sim: Simulator, age: int, status: int
) -> None:
    when = datetime.now(timezone.utc) - timedelta(seconds=age)
    response = signed_get(sim, when=when)

    assert response.status_code == status
    if status == 400:
        assert_error(response, 400, "RequestExpired")


def test_clock_offset_moves_the_simulator_clock(sim: Simulator) -> None:
    sim.clock_offset = 3600.0
    assert_error(signed_get(sim), 400, "RequestExpired")

    later = datetime.now(timezone.utc) + timedelta(seconds=3600)
    assert signed_get(sim, when=later).status_code == 200


def test_security_token_must_be_sent_signed_and_equal(sim: Simulator) -> None:
    temporary = Credentials(TOKEN_AK, SK, TOKEN)
    token = {"x-bce-security-token": TOKEN}

    assert signed_get(sim, credentials=temporary, extra_headers=token).status_code == 200
    assert_error(signed_get(sim, credentials=temporary), 403, "InvalidAccessKeyId")
    wrong = {"x-bce-security-token": "other"}
    assert_error(
        signed_get(sim, credentials=temporary, extra_headers=wrong), 403, "InvalidAccessKeyId"
    )
    unsigned = signed_get(
        sim, credentials=temporary, extra_headers=token, signed_headers=["host", "x-bce-date"]
    )
    assert_error(unsigned, 403, "InvalidAccessKeyId")


def test_percent_encoded_path_is_verified_in_its_decoded_form(sim: Simulator) -> None:
    stamp = format_timestamp(datetime.now(timezone.utc))
    headers = {"host": f"127.0.0.1:{sim.port}", "x-bce-date": stamp}
    decoded = authorization(CREDENTIALS, "GET", "/b j/v2/image", {}, headers, stamp)
    encoded = authorization(CREDENTIALS, "GET", "/b%20j/v2/image", {}, headers, stamp)

    def send(header: str) -> requests.Response:
        url = sim.url + "/b%20j/v2/image"
        return requests.get(url, headers={**headers, "authorization": header}, timeout=5)

    assert send(decoded).json()["images"] == []
    assert sim.requests[-1].region == "b j"
    assert_error(send(encoded), 400, "SignatureDoesNotMatch")


# --- routing and parameters ------------------------------------------------------------


def test_plain_path_serves_bj_and_region_prefix_serves_that_region(sim: Simulator) -> None:
    plain = signed_get(sim, "/v2/image").json()["images"]
    gz = signed_get(sim, "/gz/v2/image").json()["images"]

    assert [i["id"] for i in plain] == [i["id"] for i in sim.images(AK, "bj", "All")]
    assert [i["id"] for i in gz] == [i["id"] for i in sim.images(AK, "gz", "All")]
    assert [r.region for r in sim.requests] == ["bj", "gz"]


def test_unknown_region_is_an_empty_listing(sim: Simulator) -> None:
    body = signed_get(sim, "/hkg/v2/image").json()

    assert body == {"marker": "", "isTruncated": False, "maxKeys": 1000, "images": []}


def test_other_paths_are_404_and_other_methods_405(sim: Simulator) -> None:
    assert_error(requests.get(sim.url + "/v2/instance", timeout=5), 404, "NoSuchResource")
    posted = requests.post(sim.url + "/bj/v2/image", data=b"{}", timeout=5)
    assert_error(posted, 405, "MethodNotAllowed")
    assert posted.headers["Allow"] == "GET"
    assert [(r.method, r.status) for r in sim.requests] == [("GET", 404), ("POST", 405)]


@pytest.mark.parametrize(
    "params", [{"maxKeys": "0"}, {"maxKeys": "-3"}, {"maxKeys": "ten"}, {"imageType": "Nope"}]
)
def test_bad_parameters_give_invalid_parameter(sim: Simulator, params: dict[str, str]) -> None:
    assert_error(signed_get(sim, params=params), 400, "InvalidParameter")


def test_connection_is_kept_alive_between_requests(sim: Simulator) -> None:
    connection = HTTPConnection("127.0.0.1", sim.port, timeout=5)
    try:
        sockets = []
        for _ in range(3):
            connection.request("GET", "/nowhere")
            response = connection.getresponse()
            assert response.status == 404
            assert int(response.headers["Content-Length"]) == len(response.read())
            sockets.append(connection.sock)
    finally:
        connection.close()

    assert sockets[0] is not None
    assert sockets.count(sockets[0]) == 3


# --- pagination ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("image_type", "count"),
    [
        ("All", BJ["System"] + BJ["Custom"] + BJ["Integration"]),
        ("System", BJ["System"]),
        ("Custom", BJ["Custom"]),
        ("Sharing", BJ["Sharing"]),
        ("EbcTotal", BJ["EbcSystem"] + BJ["EbcCustom"]),
        ("EbcCustom", BJ["EbcCustom"]),
        ("GpuBccSystem", 0),
    ],
)
def test_each_filter_lists_its_images_exactly_once(
    sim: Simulator, image_type: str, count: int
) -> None:
    images = list_all(sim, image_type, max_keys=4)
    ids = [image["id"] for image in images]

    assert len(ids) == count == len(set(ids))
    assert ids == [image["id"] for image in sim.images(AK, "bj", image_type)]
    if image_type not in ("All", "EbcTotal"):
        assert {image["type"] for image in images} <= {image_type}


def test_listing_order_is_stable(sim: Simulator) -> None:
    assert list_all(sim, "All", 5) == list_all(sim, "All", 7)


def test_max_keys_is_capped_at_1000(sim: Simulator) -> None:
    sim.set_images(AK, "bj", {"Custom": 1500})
    body = signed_get(sim, params={"imageType": "Custom", "maxKeys": "5000"}).json()

    assert body["maxKeys"] == 1000
    assert len(body["images"]) == 1000
    assert body["isTruncated"] is True
    default = signed_get(sim, params={"imageType": "Custom"}).json()
    assert default["maxKeys"] == 1000
    second = signed_get(sim, params={"imageType": "Custom", "marker": body["nextMarker"]}).json()
    assert len(second["images"]) == 500
    assert second["isTruncated"] is False
    assert "nextMarker" not in second
    assert second["marker"] == body["nextMarker"]


def test_markers_are_opaque_and_bound_to_their_filter(sim: Simulator) -> None:
    first = signed_get(sim, params={"imageType": "System", "maxKeys": "3"}).json()
    marker = first["nextMarker"]
    ids = {image["id"] for image in sim.images(AK, "bj")}

    assert marker not in ids
    assert not marker.isdigit()
    foreign = signed_get(sim, params={"imageType": "Custom", "marker": marker})
    assert_error(foreign, 400, "InvalidParameter")
    other_region = signed_get(sim, "/gz/v2/image", {"imageType": "System", "marker": marker})
    assert_error(other_region, 400, "InvalidParameter")
    for garbage in ("m-abc12345", "!!", "bm90Om1pbmU"):
        assert_error(signed_get(sim, params={"marker": garbage}), 400, "InvalidParameter")


def test_empty_marker_means_the_first_page(sim: Simulator) -> None:
    body = signed_get(sim, params={"marker": "", "maxKeys": "2"}).json()

    assert body["marker"] == ""
    assert [i["id"] for i in body["images"]] == [i["id"] for i in sim.images(AK, "bj", "All")[:2]]
    assert sim.requests[-1].marker == ""


# --- datasets --------------------------------------------------------------------------


def test_datasets_depend_only_on_seed_account_region_and_type() -> None:
    one = SimulatedAccount(AK, SK, images={"bj": {"Custom": 5}, "gz": {"System": 3}})
    two = SimulatedAccount(AK, SK, images={"bj": {"Custom": 5, "System": 40}})

    first, second = Simulator([one], seed=9), Simulator([two], seed=9)
    assert first.images(AK, "bj", "Custom") == second.images(AK, "bj", "Custom")
    assert Simulator([one], seed=10).images(AK, "bj") != first.images(AK, "bj")


def test_set_images_replaces_a_region(sim: Simulator) -> None:
    sim.set_images(AK, "gz", {"Integration": 4})

    assert [i["type"] for i in sim.images(AK, "gz")] == ["Integration"] * 4
    assert len(signed_get(sim, "/gz/v2/image").json()["images"]) == 4
    with pytest.raises(ConfigError, match="unknown image type"):
        sim.set_images(AK, "gz", {"Windows": 1})
    with pytest.raises(ConfigError, match="no simulated account"):
        sim.images("nobody", "gz")


def test_generated_images_look_like_bcc_images() -> None:
    images = generate_images(1, AK, "bj", "Custom", 3000)
    statuses = {image["status"] for image in images}

    assert all(re.fullmatch(r"m-[A-Za-z0-9]{8}", image["id"]) for image in images)
    assert len({image["id"] for image in images}) == 3000
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", i["createTime"]) for i in images)
    assert {"Available", "Creating", "CreatedFailed", "NotAvailable", "Error"} <= statuses
    assert {"linux", "windows"} == {image["osType"] for image in images}
    assert any(image.get("osArch") == "aarch64" for image in images)
    assert any("osArch" not in image for image in images)
    assert any("osVersion" in image and image["osVersion"] is None for image in images)
    assert sum(image["osType"] == "linux" for image in images) > 0.8 * len(images)


def test_large_region_generates_and_serves_fast() -> None:
    account = SimulatedAccount(AK, SK, images={"bj": {"Custom": 100_000}})
    started = time.perf_counter()
    with Simulator([account]) as sim:
        generated = time.perf_counter()
        last = None
        for _ in range(5):
            params = {"imageType": "Custom", **({"marker": last} if last else {})}
            last = signed_get(sim, params=params).json()["nextMarker"]
        served = time.perf_counter()

    assert generated - started < 4.0
    assert served - generated < 2.0


def test_demo_account_uses_fake_keys_and_several_regions() -> None:
    (account,) = default_accounts()

    assert account.access_key_id == DEMO_ACCESS_KEY_ID
    assert len(DEMO_ACCESS_KEY_ID) == len(DEMO_SECRET_ACCESS_KEY) == 32
    assert set(account.images) == {"bj", "gz", "su"}
    assert account.images["bj"]["Custom"] > 0


# --- faults ----------------------------------------------------------------------------


def test_latency_fault_delays_without_serialising_requests(sim: Simulator) -> None:
    sim.add_fault(Fault("latency", delay=0.4))
    results: list[int] = []
    threads = [
        threading.Thread(target=lambda: results.append(signed_get(sim).status_code))
        for _ in range(4)
    ]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started

    assert results == [200] * 4
    assert 0.4 <= elapsed < 1.2


def test_error_fault_sends_bce_error_and_is_used_up_after_times(sim: Simulator) -> None:
    sim.add_fault(Fault("error", status=503, code="ServiceUnavailable", times=2))

    assert_error(signed_get(sim), 503, "ServiceUnavailable")
    assert_error(signed_get(sim), 503, "ServiceUnavailable")
    assert signed_get(sim).status_code == 200
    assert [r.code for r in sim.requests] == ["ServiceUnavailable"] * 2 + [None]


def test_throttle_fault_sends_429_with_retry_after(sim: Simulator) -> None:
    sim.add_fault(Fault("throttle", retry_after=2))
    response = signed_get(sim)

    assert_error(response, 429, "RequestRateLimitExceeded")
    assert response.headers["Retry-After"] == "2"


def test_html_empty_and_malformed_faults(sim: Simulator) -> None:
    sim.add_fault(Fault("html", times=1))
    sim.add_fault(Fault("empty", status=500, times=1))
    sim.add_fault(Fault("malformed", times=1))

    html = signed_get(sim)
    assert html.status_code == 502
    assert html.headers["Content-Type"].startswith("text/html")
    assert "<html>" in html.text
    empty = signed_get(sim)
    assert (empty.status_code, empty.content) == (500, b"")
    malformed = signed_get(sim)
    assert malformed.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(malformed.text)


def test_truncated_fault_cuts_the_page_json_in_half(sim: Simulator) -> None:
    whole = signed_get(sim).content
    sim.add_fault(Fault("truncated", times=1))
    cut = signed_get(sim).content

    assert cut == whole[: len(whole) // 2]


def test_marker_loop_points_next_marker_back_at_the_current_page(sim: Simulator) -> None:
    first = signed_get(sim, params={"maxKeys": "4"}).json()
    sim.add_fault(Fault("marker_loop", page=2))
    second = signed_get(sim, params={"maxKeys": "4", "marker": first["nextMarker"]}).json()

    assert second["isTruncated"] is True
    assert second["nextMarker"] == first["nextMarker"]
    looped = signed_get(sim, params={"maxKeys": "4", "marker": second["nextMarker"]}).json()
    assert looped["images"] == second["images"]


def test_missing_next_marker_fault(sim: Simulator) -> None:
    sim.add_fault(Fault("missing_next_marker"))
    body = signed_get(sim, params={"maxKeys": "4"}).json()

    assert body["isTruncated"] is True
    assert "nextMarker" not in body


def test_oversized_page_fault_returns_more_than_max_keys(sim: Simulator) -> None:
    sim.add_fault(Fault("oversized_page"))
    body = signed_get(sim, params={"maxKeys": "4"}).json()

    assert body["maxKeys"] == 4
    assert len(body["images"]) > 4


def test_not_a_list_fault_makes_images_an_object(sim: Simulator) -> None:
    sim.add_fault(Fault("not_a_list"))

    assert isinstance(signed_get(sim).json()["images"], dict)


def test_reset_fault_breaks_the_connection_mid_body(sim: Simulator) -> None:
    sim.add_fault(Fault("reset", times=1))

    broken = (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError)
    with pytest.raises(broken):
        signed_get(sim)
    assert signed_get(sim).status_code == 200
    assert sim.requests[0].status == 200


def test_reset_fault_seen_on_a_raw_socket(sim: Simulator) -> None:
    sim.add_fault(Fault("reset"))
    received, reset = signed_get_raw(sim)

    assert reset
    assert received.startswith(b"HTTP/1.1 200")
    length = int(re.search(rb"Content-Length: (\d+)", received).group(1))  # type: ignore[union-attr]
    assert 0 < len(received.split(b"\r\n\r\n", 1)[1]) < length


def test_slow_body_fault_trickles_the_whole_page(sim: Simulator) -> None:
    whole = signed_get(sim).content
    sim.add_fault(Fault("slow_body", delay=0.5))
    started = time.perf_counter()
    slow = signed_get(sim).content

    assert time.perf_counter() - started >= 0.45
    assert slow == whole


def test_fault_matchers_select_account_region_type_and_page(sim: Simulator) -> None:
    sim.add_fault(Fault("error", region="gz"))
    sim.add_fault(Fault("error", image_type="Custom", code="CustomBroken"))
    sim.add_fault(Fault("error", access_key_id="nobody"))
    sim.add_fault(Fault("throttle", page=2))

    assert_error(signed_get(sim, "/gz/v2/image"), 500, "InternalError")
    assert_error(signed_get(sim, params={"imageType": "Custom"}), 500, "CustomBroken")
    first = signed_get(sim, params={"maxKeys": "3"})
    assert first.status_code == 200
    second = signed_get(sim, params={"maxKeys": "3", "marker": first.json()["nextMarker"]})
    assert_error(second, 429, "RequestRateLimitExceeded")
    sim.clear_faults()
    assert signed_get(sim, "/gz/v2/image").status_code == 200


def test_page_faults_do_not_fire_on_rejected_requests(sim: Simulator) -> None:
    sim.add_fault(Fault("not_a_list", times=1))

    assert_error(signed_get(sim, credentials=Credentials("f" * 32, SK)), 403, "InvalidAccessKeyId")
    assert isinstance(signed_get(sim).json()["images"], dict)


def test_invalid_faults_are_refused() -> None:
    with pytest.raises(ConfigError, match="unknown fault kind"):
        Fault("meltdown")
    with pytest.raises(ConfigError, match="times"):
        Fault("error", times=0)


# --- request log -----------------------------------------------------------------------


def test_request_log_records_every_request_with_its_outcome(sim: Simulator) -> None:
    signed_get(sim, params={"imageType": "System", "maxKeys": "2", "marker": ""})
    signed_get(sim, credentials=Credentials("f" * 32, SK))
    requests.get(sim.url + "/gz/v2/image?maxKeys=x", timeout=5)
    records = sim.requests

    assert [(r.status, r.code) for r in records] == [
        (200, None),
        (403, "InvalidAccessKeyId"),
        (400, "InvalidHTTPAuthHeader"),
    ]
    assert (records[0].image_type, records[0].max_keys, records[0].marker) == ("System", 2, "")
    assert records[0].headers["authorization"].startswith(f"bce-auth-v1/{AK}/")
    assert records[0].path == "/bj/v2/image"
    assert records[1].access_key_id == "f" * 32
    assert (records[2].region, records[2].max_keys, records[2].marker) == ("gz", None, None)
    sim.clear_requests()
    assert sim.requests == []


# --- command line ----------------------------------------------------------------------


def test_cli_serves_signed_requests_and_exits_cleanly_on_sigterm(tmp_path: Path) -> None:
    scenario = tmp_path / "scenario.yml"
    scenario.write_text("faults:\n  - {kind: throttle, page: 2, times: 1, retry_after: 3}\n")
    process = start_cli("--images", "gz:Custom=3,System=2", "--scenario", str(scenario))
    try:
        line = process.stdout.readline() if process.stdout else ""
        endpoint = re.search(r"endpoint=(\S+)", line).group(1)  # type: ignore[union-attr]
        base = endpoint.removesuffix("/{region}")
        demo = Credentials(DEMO_ACCESS_KEY_ID, DEMO_SECRET_ACCESS_KEY)
        first = signed_get(base, "/gz/v2/image", {"maxKeys": "4"}, credentials=demo)
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/\{region\}", endpoint)
        assert [i["type"] for i in first.json()["images"]] == [
            "System",
            "System",
            "Custom",
            "Custom",
        ]
        params = {"maxKeys": "4", "marker": first.json()["nextMarker"]}
        second = signed_get(base, "/gz/v2/image", params, credentials=demo)
        assert_error(second, 429, "RequestRateLimitExceeded")
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0


def test_cli_refuses_a_bad_scenario_with_exit_2(tmp_path: Path) -> None:
    scenario = tmp_path / "bad.yml"
    scenario.write_text("faults:\n  - {kind: explode}\n  - {kind: error, colour: red}\n")
    process = start_cli("--scenario", str(scenario))
    _, stderr = process.communicate(timeout=10)

    assert process.returncode == 2
    assert "unknown fault kind 'explode'" in stderr
    assert "unknown key 'colour'" in stderr
    assert "docs/simulator.md" in stderr


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--listen", "192.0.2.1:8765"], "not a loopback address"),
        (["--listen", "nonsense"], "expected HOST:PORT"),
        (["--images", "bj:Custom=x"], "expected REGION:TYPE=N"),
        (["--latency", "-1"], ">= 0"),
        (["--log-level", "loud"], "invalid choice"),
    ],
)
def test_cli_rejects_bad_flags_with_exit_2(
    flags: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from exporter.simulator.cli import main

    assert main(flags) == 2
    assert message in capsys.readouterr().err


def test_images_flag_and_scenario_parse() -> None:
    assert parse_images(["bj:Custom=2,System=1", "bj:Sharing=1", "gz:System=0"]) == {
        "bj": {"Custom": 2, "System": 1, "Sharing": 1},
        "gz": {"System": 0},
    }
    scenario = parse_scenario(
        {
            "seed": 4,
            "accounts": [
                {"access_key_id": "a", "secret_access_key": "b", "images": {"bj": {"Custom": 1}}}
            ],
            "faults": [{"kind": "latency", "delay": 0.1}, {"kind": "error", "page": 2}],
        }
    )
    assert scenario.seed == 4
    assert scenario.accounts == [SimulatedAccount("a", "b", None, {"bj": {"Custom": 1}})]
    assert scenario.faults == [Fault("latency", delay=0.1), Fault("error", page=2)]


def start_cli(*flags: str) -> subprocess.Popen[str]:
    """Start `python -m exporter.simulator.cli` on a free loopback port."""
    return subprocess.Popen(
        [sys.executable, "-m", "exporter.simulator.cli", "--listen", "127.0.0.1:0", *flags],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def signed_get_raw(sim: Simulator) -> tuple[bytes, bool]:
    """Send a signed GET over a raw socket; return the bytes read and whether it was reset."""
    stamp = format_timestamp(datetime.now(timezone.utc))
    host = f"127.0.0.1:{sim.port}"
    header = authorization(CREDENTIALS, "GET", "/bj/v2/image", {}, {"host": host}, stamp)
    request = f"GET /bj/v2/image HTTP/1.1\r\nHost: {host}\r\nAuthorization: {header}\r\n\r\n"
    received = b""
    with socket.create_connection(("127.0.0.1", sim.port), timeout=5) as connection:
        connection.sendall(request.encode())
        try:
            while chunk := connection.recv(65536):
                received += chunk
        except ConnectionResetError:
            return received, True
    return received, False
