"""Sign BCE API requests with the `bce-auth-v1` scheme."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone

EXPIRATION_SECONDS = 1800
AUTH_VERSION = "bce-auth-v1"
SECURITY_TOKEN_HEADER = "x-bce-security-token"
DATE_HEADER = "x-bce-date"

_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


@dataclass(frozen=True)
class Credentials:
    """Hold an access key pair and, for temporary credentials, a security token."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    security_token: str | None = field(default=None, repr=False)


def uri_encode(text: str, *, keep_slash: bool = False) -> str:
    """Percent-encode UTF-8 bytes as BCE does: upper-case hex, space as %20, never +."""
    out = []
    for byte in text.encode("utf-8"):
        if byte in _UNRESERVED or (keep_slash and byte == 0x2F):
            out.append(chr(byte))
        else:
            out.append(f"%{byte:02X}")
    return "".join(out)


def canonical_uri(path: str) -> str:
    """Encode a request path for signing, keeping `/`; an empty path is `/`."""
    return uri_encode(path, keep_slash=True) if path else "/"


def canonical_query(params: Mapping[str, str]) -> str:
    """Sort the encoded `key=value` strings byte-wise, skipping `authorization`."""
    pairs = [
        f"{uri_encode(key)}={uri_encode(value)}"
        for key, value in params.items()
        if key.lower() != "authorization"
    ]
    return "&".join(sorted(pairs))


def canonical_headers(headers: Mapping[str, str], names: Iterable[str]) -> str:
    """Join the encoded `name:value` lines of the signed headers; empty values are skipped."""
    wanted = set(names)
    lines = []
    for name, value in headers.items():
        key, text = name.strip().lower(), str(value).strip()
        if key in wanted and text:
            lines.append(f"{uri_encode(key)}:{uri_encode(text)}")
    return "\n".join(sorted(lines))


def format_timestamp(moment: datetime) -> str:
    """Render an instant as BCE wants it: UTC, whole seconds, `Z` suffix."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def authorization(
    credentials: Credentials,
    method: str,
    path: str,
    params: Mapping[str, str],
    headers: Mapping[str, str],
    timestamp: str,
    *,
    signed_headers: Iterable[str] | None = None,
    expiration: int = EXPIRATION_SECONDS,
) -> str:
    """Compute the `Authorization` header value for one request.

    `signed_headers` defaults to `host` plus every `x-bce-*` header present.
    """
    names = sorted(
        {n.lower() for n in signed_headers}
        if signed_headers is not None
        else {n.strip().lower() for n in headers if _signed_by_default(n)}
    )
    prefix = f"{AUTH_VERSION}/{credentials.access_key_id}/{timestamp}/{expiration}"
    signing_key = _hmac_hex(credentials.secret_access_key, prefix)
    canonical_request = "\n".join(
        [
            method.upper(),
            canonical_uri(path),
            canonical_query(params),
            canonical_headers(headers, names),
        ]
    )
    signature = _hmac_hex(signing_key, canonical_request)
    return f"{prefix}/{';'.join(names)}/{signature}"


def sign_headers(
    credentials: Credentials,
    method: str,
    host: str,
    path: str,
    params: Mapping[str, str],
    now: datetime,
) -> dict[str, str]:
    """Return the headers to send with a freshly signed request: host, date, token, auth."""
    timestamp = format_timestamp(now)
    headers = {"host": host, DATE_HEADER: timestamp}
    if credentials.security_token:
        headers[SECURITY_TOKEN_HEADER] = credentials.security_token
    headers["authorization"] = authorization(credentials, method, path, params, headers, timestamp)
    return headers


def _signed_by_default(name: str) -> bool:
    key = name.strip().lower()
    return key == "host" or key.startswith("x-bce-")


def _hmac_hex(key: str, message: str) -> str:
    return hmac.new(key.encode("utf-8"), message.encode("utf-8"), hashlib.sha256).hexdigest()
