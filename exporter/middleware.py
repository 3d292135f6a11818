"""Wrap the WSGI app with the web config's rate limit, basic auth and response headers."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import bcrypt

if TYPE_CHECKING:
    from exporter.web import Environ, StartResponse, WsgiApp
    from exporter.webconfig import WebConfig

REALM = "bcc-image-exporter"
CHALLENGE = f'Basic realm="{REALM}", charset="UTF-8"'
# bcrypt reads at most 72 bytes; longer passwords are refused rather than silently cut.
MAX_PASSWORD_BYTES = 72
# Only verified pairs are remembered, so the cache holds about one entry per user.
MAX_CACHED_PAIRS = 1024


def guard(app: WsgiApp, config: WebConfig) -> WsgiApp:
    """Return `app` behind the rate limit and basic auth, adding the configured headers."""
    limiter = TokenBucket(*config.rate_limit) if config.rate_limit else None
    auth = BasicAuth(config.users) if config.users else None
    extra = list(config.headers)
    if limiter is None and auth is None and not extra:
        return app

    def guarded(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        def start(status: str, headers: list[tuple[str, str]], *exc_info: Any) -> Any:
            return start_response(status, [*headers, *extra], *exc_info)

        if limiter is not None and not limiter.take():
            return _refuse(start, "429 Too Many Requests", [])
        if auth is not None and not auth.allows(environ.get("HTTP_AUTHORIZATION", "")):
            return _refuse(start, "401 Unauthorized", [("WWW-Authenticate", CHALLENGE)])
        return app(environ, start)

    return guarded


class BasicAuth:
    """Check Basic credentials against bcrypt hashes, remembering the pairs that passed."""

    def __init__(self, users: Mapping[str, bytes]) -> None:
        self._users = [(name.encode(), hashed) for name, hashed in users.items()]
        # Unknown users are checked against a real hash, so they cost as much as known ones.
        self._decoy = self._users[0][1]
        self._key = secrets.token_bytes(32)
        self._passed: set[bytes] = set()
        self._lock = threading.Lock()

    def allows(self, authorization: str) -> bool:
        """Tell whether an Authorization header names a user with the right password."""
        pair = _credentials(authorization)
        if pair is None:
            return False
        user, password = pair
        digest = hmac.new(self._key, _pack(user, password), hashlib.sha256).digest()
        with self._lock:
            if digest in self._passed:
                return True
        hashed = self._lookup(user)
        try:
            matches = bcrypt.checkpw(password, hashed or self._decoy)
        except ValueError:
            return False
        if not (matches and hashed):
            return False
        with self._lock:
            if len(self._passed) >= MAX_CACHED_PAIRS:
                self._passed.clear()
            self._passed.add(digest)
        return True

    def _lookup(self, user: bytes) -> bytes | None:
        # Compare with every name, whatever matches, so timing does not tell which users exist.
        found = None
        for name, hashed in self._users:
            if hmac.compare_digest(name, user):
                found = hashed
        return found


class TokenBucket:
    """Allow `burst` requests at once and one more every `interval` seconds."""

    def __init__(self, interval: float, burst: int) -> None:
        self._interval = interval
        self._burst = burst
        self._tokens = float(burst)
        self._last = time.monotonic()
        self._lock = threading.Lock()

    def take(self) -> bool:
        """Spend one token if there is one."""
        with self._lock:
            now = time.monotonic()
            elapsed, self._last = now - self._last, now
            self._tokens = min(self._burst, self._tokens + elapsed / self._interval)
            if self._tokens < 1:
                return False
            self._tokens -= 1
            return True


def _credentials(authorization: str) -> tuple[bytes, bytes] | None:
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, colon, password = decoded.partition(b":")
    if not colon or len(password) > MAX_PASSWORD_BYTES:
        return None
    return user, password


def _pack(user: bytes, password: bytes) -> bytes:
    return len(user).to_bytes(4, "big") + user + password


def _refuse(
    start_response: StartResponse, status: str, headers: list[tuple[str, str]]
) -> list[bytes]:
    body = status.split(" ", 1)[1].lower().encode() + b"\n"
    start_response(
        status,
        [
            *headers,
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(body))),
        ],
    )
    return [body]
