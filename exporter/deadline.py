"""Hold each BCC API request to the refresh deadline, even against a server that trickles.

Socket timeouts bound each read, not the whole answer: a server that sends a byte every
few seconds would keep a request alive for ever. A timer shuts the request's socket down
when the deadline passes, which ends any read in progress.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

_current = threading.local()


class Guard:
    """Shut the socket of one request down once its deadline has passed."""

    def __init__(self) -> None:
        self.expired = False
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()

    def attach(self, sock: socket.socket | None) -> None:
        """Watch the socket the request is using."""
        with self._lock:
            self._sock = sock
            if self.expired:
                _shutdown(sock)

    def expire(self) -> None:
        """Mark the deadline as passed and cut the socket."""
        with self._lock:
            self.expired = True
            _shutdown(self._sock)


@contextlib.contextmanager
def deadline_guard(seconds: float) -> Iterator[Guard]:
    """Guard the requests this thread sends within the block for `seconds` at most."""
    guard = Guard()
    timer = threading.Timer(max(0.0, seconds), guard.expire)
    timer.daemon = True
    _current.guard = guard
    timer.start()
    try:
        yield guard
    finally:
        timer.cancel()
        _current.guard = None


class GuardedAdapter(HTTPAdapter):
    """Use connections that report their socket to the guard of the calling thread."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        """Set up the pool manager with guarded connection pools."""
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _GuardedHTTPPool,
            "https": _GuardedHTTPSPool,
        }


class _GuardedHTTPConnection(HTTPConnection):
    def request(self, *args: Any, **kwargs: Any) -> None:
        super().request(*args, **kwargs)
        _attach(self.sock)


class _GuardedHTTPSConnection(HTTPSConnection):
    def request(self, *args: Any, **kwargs: Any) -> None:
        super().request(*args, **kwargs)
        _attach(self.sock)


class _GuardedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _GuardedHTTPConnection


class _GuardedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPSConnection


def _attach(sock: socket.socket | None) -> None:
    guard: Guard | None = getattr(_current, "guard", None)
    if guard is not None:
        guard.attach(sock)


def _shutdown(sock: socket.socket | None) -> None:
    if sock is None:
        return
    # The plain socket call, even for TLS: it wakes the reading thread without touching
    # the SSL object that thread is using.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
