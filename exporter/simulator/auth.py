"""Verify `bce-auth-v1` Authorization headers as BCC does, using the project's own signer."""

from __future__ import annotations

import calendar
import hmac
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass

from exporter.signer import (
    AUTH_VERSION,
    SECURITY_TOKEN_HEADER,
    Credentials,
    authorization,
)
from exporter.simulator.accounts import SimulatedAccount
from exporter.simulator.reply import RejectedRequestError

DEFAULT_SIGNED_HEADERS = frozenset({"host", "content-md5", "content-length", "content-type"})
EARLY_TOLERANCE_SECONDS = 300
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
TIMESTAMP_PATTERN = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
SIGNATURE_PATTERN = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class AuthHeader:
    """Hold the parts of one Authorization header; `signed_headers` is None for `//`."""

    access_key_id: str
    timestamp: str
    expiration: int
    signed_headers: tuple[str, ...] | None
    signature: str


def access_key_of(value: str | None) -> str | None:
    """Return the access key id an Authorization header names, or None when unreadable."""
    try:
        return parse_authorization(value).access_key_id
    except RejectedRequestError:
        return None


def parse_authorization(value: str | None) -> AuthHeader:
    """Split an Authorization header; reject anything that is not well-formed `bce-auth-v1`."""
    if not value:
        raise _malformed("the Authorization header is missing")
    parts = value.strip().split("/")
    if len(parts) != 6 or parts[0] != AUTH_VERSION:
        raise _malformed("expected bce-auth-v1/{ak}/{timestamp}/{expiration}/{headers}/{sig}")
    _, access_key_id, timestamp, expiration, names, signature = parts
    if not access_key_id:
        raise _malformed("the access key id is empty")
    if not TIMESTAMP_PATTERN.fullmatch(timestamp):
        raise _malformed(f"timestamp {timestamp!r} is not YYYY-MM-DDTHH:MM:SSZ")
    if not expiration.isdigit() or int(expiration) < 1:
        raise _malformed(f"expiration {expiration!r} is not a positive number of seconds")
    if not SIGNATURE_PATTERN.fullmatch(signature):
        raise _malformed("the signature is not 64 lower-case hex digits")
    signed = tuple(name.strip().lower() for name in names.split(";")) if names else None
    return AuthHeader(access_key_id, timestamp, int(expiration), signed, signature)


def verify_request(
    accounts: Mapping[str, SimulatedAccount],
    method: str,
    path: str,
    params: Mapping[str, str],
    headers: Mapping[str, str],
    now: float,
) -> SimulatedAccount:
    """Return the account a request is signed by, or raise the BCE error it deserves."""
    auth = parse_authorization(headers.get("authorization"))
    account = accounts.get(auth.access_key_id)
    if account is None:
        raise RejectedRequestError(403, "InvalidAccessKeyId", "the access key id does not exist")
    _check_window(auth, now)

    names = _signed_names(auth, headers)
    if "host" not in names:
        raise _malformed("the host header must be signed")
    credentials = Credentials(account.access_key_id, account.secret_access_key)
    expected = authorization(
        credentials,
        method,
        path,
        params,
        headers,
        auth.timestamp,
        signed_headers=names,
        expiration=auth.expiration,
    ).rsplit("/", 1)[1]
    if not hmac.compare_digest(expected, auth.signature):
        raise RejectedRequestError(
            400, "SignatureDoesNotMatch", "the request signature does not match"
        )

    _check_security_token(account, headers, names)
    return account


def _check_window(auth: AuthHeader, now: float) -> None:
    signed_at = calendar.timegm(time.strptime(auth.timestamp, TIMESTAMP_FORMAT))
    if now < signed_at - EARLY_TOLERANCE_SECONDS or now > signed_at + auth.expiration:
        raise RejectedRequestError(
            400, "RequestExpired", f"the request signed at {auth.timestamp} is not valid now"
        )


def _signed_names(auth: AuthHeader, headers: Mapping[str, str]) -> set[str]:
    if auth.signed_headers is not None:
        return set(auth.signed_headers)
    # An empty field means the default set; BCE signs every x-bce-* header along with it.
    return set(DEFAULT_SIGNED_HEADERS) | {name for name in headers if name.startswith("x-bce-")}


def _check_security_token(
    account: SimulatedAccount, headers: Mapping[str, str], names: set[str]
) -> None:
    if account.security_token is None:
        return
    token = headers.get(SECURITY_TOKEN_HEADER)
    if SECURITY_TOKEN_HEADER not in names or token is None:
        raise RejectedRequestError(
            403, "InvalidAccessKeyId", "temporary credentials need a signed x-bce-security-token"
        )
    if not hmac.compare_digest(token.strip().encode(), account.security_token.encode()):
        raise RejectedRequestError(
            403, "InvalidAccessKeyId", "the security token does not belong to this access key"
        )


def _malformed(reason: str) -> RejectedRequestError:
    return RejectedRequestError(400, "InvalidHTTPAuthHeader", reason)
