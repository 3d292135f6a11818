"""Check the bce-auth-v1 signer against BCE's documented vectors and the official SDK."""

from __future__ import annotations

import urllib.parse
from datetime import datetime, timezone

import pytest
from baidubce.auth import bce_v1_signer
from baidubce.auth.bce_credentials import BceCredentials
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.signer import Credentials, authorization, canonical_query, sign_headers, uri_encode

AK, SK = "a" * 32, "b" * 32
TIMESTAMP = "2015-04-27T08:23:49Z"
CREDENTIALS = Credentials(AK, SK)
BCC_HEADERS = {"host": "bcc.bj.baidubce.com", "x-bce-date": TIMESTAMP}
DOC_HEADERS = {
    "Host": "bj.bcebos.com",
    "Content-Type": "text/plain",
    "Content-Length": "8",
    "Content-Md5": "NFzcPqhviddjRNnSOGo4rw==",
    "x-bce-date": TIMESTAMP,
    "Date": "Mon, 27 Apr 2015 16:23:49 +0800",
}
DOC_PARAMS = {"partNumber": "9", "uploadId": "a44cc9bab11cbd156984767aad637851"}


def _signature(header: str) -> str:
    return header.rsplit("/", 1)[1]


def test_documented_vector_with_the_default_header_set() -> None:
    names = ["content-length", "content-md5", "content-type", "host", "x-bce-date"]
    header = authorization(
        CREDENTIALS,
        "PUT",
        "/v1/test/myfolder/readme.txt",
        DOC_PARAMS,
        DOC_HEADERS,
        TIMESTAMP,
        signed_headers=names,
    )
    assert _signature(header) == "d74a04362e6a848f5b39b15421cb449427f419c95a480fd6b8cf9fc783e2999e"


def test_documented_vector_signing_only_host_and_date() -> None:
    header = authorization(
        CREDENTIALS,
        "PUT",
        "/v1/test/myfolder/readme.txt",
        DOC_PARAMS,
        DOC_HEADERS,
        TIMESTAMP,
        signed_headers=["host", "x-bce-date"],
    )
    assert header == (
        f"bce-auth-v1/{AK}/{TIMESTAMP}/1800/host;x-bce-date/"
        "1b8de5a23a56eef657c69f94c621e7acd227d049a4ba577f537d5e5cebf0cf32"
    )


@pytest.mark.parametrize(
    ("path", "params", "extra_headers", "signed", "signature"),
    [
        (
            "/v2/image",
            {"imageType": "All", "maxKeys": "1000"},
            {},
            "host;x-bce-date",
            "30d89c81db4ac993ada89736d73977d65e8666f9284cecdf9de6a7da88cd98be",
        ),
        (
            "/v2/image",
            {"imageType": "All", "marker": "m-abc123", "maxKeys": "100"},
            {"x-bce-security-token": "sts-token/abc=="},
            "host;x-bce-date;x-bce-security-token",
            "867bccc17442043b0f6f680fcba1a7d060058e66977e21b8692a71d54475637e",
        ),
        (
            "/v2/image",
            {"imageType": "All", "maxKeys": "1000", "marker": ""},
            {},
            "host;x-bce-date",
            "01fadfb7c3da2af4c8bd2582042ff38da3f97ce1c6e879832e0ddf79b7a580a9",
        ),
        (
            "/v2/image",
            {"imageType": "Custom", "imageName": "my image/v1~测试", "maxKeys": "10"},
            {},
            "host;x-bce-date",
            "8b7da5542bafc793a0b4b523b24cc9373c4730630bd0f857a201443f691411e1",
        ),
        (
            "/v2/image/m-a b:c",
            {},
            {},
            "host;x-bce-date",
            "cdac35e24e42bd4911992301eb1f0a7c7b8aad5b94eb0da0d7330ca006618648",
        ),
    ],
)
def test_image_list_vectors(
    path: str, params: dict[str, str], extra_headers: dict[str, str], signed: str, signature: str
) -> None:
    header = authorization(
        CREDENTIALS, "GET", path, params, {**BCC_HEADERS, **extra_headers}, TIMESTAMP
    )
    assert header == f"bce-auth-v1/{AK}/{TIMESTAMP}/1800/{signed}/{signature}"


def test_uri_encode_uses_upper_case_hex_and_percent_twenty_for_space() -> None:
    assert uri_encode("a b/~é") == "a%20b%2F~%C3%A9"
    assert uri_encode("a b/c", keep_slash=True) == "a%20b/c"


def test_canonical_query_skips_authorization_and_sorts_joined_pairs() -> None:
    params = {"b": "1", "authorization": "x", "a": "", "A": "2"}
    assert canonical_query(params) == "A=2&a=&b=1"


def test_sign_headers_adds_the_security_token_and_signs_it() -> None:
    now = datetime(2015, 4, 27, 8, 23, 49, tzinfo=timezone.utc)
    headers = sign_headers(
        Credentials(AK, SK, "sts-token/abc=="),
        "GET",
        "bcc.bj.baidubce.com",
        "/v2/image",
        {"imageType": "All", "marker": "m-abc123", "maxKeys": "100"},
        now,
    )
    assert headers["x-bce-security-token"] == "sts-token/abc=="
    assert headers["x-bce-date"] == TIMESTAMP
    assert _signature(headers["authorization"]) == (
        "867bccc17442043b0f6f680fcba1a7d060058e66977e21b8692a71d54475637e"
    )


def test_credentials_repr_hides_the_secret_and_token() -> None:
    text = repr(Credentials("AKID", "very-secret", "token-value"))
    assert "very-secret" not in text and "token-value" not in text


# Characters that exercise the encoder: unicode, space, the reserved set and the unreserved marks.
_TEXT = st.text(
    alphabet=st.sampled_from(list("abcXYZ019 -._~/=&?%+:@!*'()测试é")), min_size=0, max_size=12
)
_KEY = _TEXT.filter(lambda k: k != "" and k.lower() != "authorization")


@settings(max_examples=300, deadline=None)
@given(
    path=_TEXT,
    params=st.dictionaries(_KEY, _TEXT, max_size=5),
    header_values=st.lists(_TEXT.filter(lambda v: v.strip() != ""), min_size=0, max_size=3),
    token=st.none() | _TEXT.filter(lambda v: v.strip() != ""),
)
def test_signature_matches_the_official_sdk(
    path: str, params: dict[str, str], header_values: list[str], token: str | None
) -> None:
    """Compare with baidubce's signer on random paths, query parameters and header values."""
    path = "/" + path
    headers = {"host": "bcc.bj.baidubce.com:8443", "x-bce-date": TIMESTAMP}
    headers.update({f"x-bce-meta-{i}": value for i, value in enumerate(header_values)})
    if token is not None:
        headers["x-bce-security-token"] = token
    ours = authorization(Credentials(AK, SK), "GET", path, params, headers, TIMESTAMP)

    signed = sorted(name.encode() for name in headers)
    theirs = bce_v1_signer.sign(
        BceCredentials(AK.encode(), SK.encode()),
        b"GET",
        urllib.parse.quote(path, safe="/~").encode(),
        {k.encode(): v.encode() for k, v in headers.items()},
        {k.encode(): v.encode() for k, v in params.items()},
        timestamp=1430123029,
        expiration_in_seconds=1800,
        headers_to_sign=signed,
    )

    assert ours == theirs.decode()
