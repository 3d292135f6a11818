"""Cut off connections whose current phase (handshake, request, response) runs too long."""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time

# How often the watchdog looks for connections past their deadline.
WATCH_INTERVAL = 0.1

log = logging.getLogger(__name__)


class Deadlines:
    """Track a deadline per connection; one watchdog thread cuts those that pass it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sockets: dict[int, tuple[socket.socket, float | None]] = {}
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="http-deadlines", daemon=True)

    def __len__(self) -> int:
        with self._lock:
            return len(self._sockets)

    def watch(self, sock: socket.socket, seconds: float | None) -> None:
        """Track a connection, keyed by its descriptor, and give it `seconds` from now."""
        deadline = None if seconds is None else time.monotonic() + seconds
        with self._lock:
            self._sockets[sock.fileno()] = (sock, deadline)

    def forget(self, fd: int) -> None:
        """Stop tracking a connection before it is closed and its descriptor reused."""
        with self._lock:
            self._sockets.pop(fd, None)

    def start(self) -> None:
        """Start the watchdog thread."""
        self._thread.start()

    def stop(self) -> None:
        """Cut every tracked connection and end the watchdog thread."""
        self._stopped.set()
        with self._lock:
            sockets = [sock for sock, _ in self._sockets.values()]
        for sock in sockets:
            cut(sock)
        if self._thread.is_alive():
            self._thread.join(timeout=1.0)

    def _watch(self) -> None:
        while not self._stopped.wait(WATCH_INTERVAL):
            now = time.monotonic()
            with self._lock:
                late = [
                    (fd, sock)
                    for fd, (sock, due) in self._sockets.items()
                    if due is not None and due <= now
                ]
                for fd, sock in late:
                    self._sockets[fd] = (sock, None)
            for _, sock in late:
                log.debug("http connection cut off at its deadline")
                cut(sock)


def cut(sock: socket.socket) -> None:
    """Shut a connection down in both directions, waking the thread blocked on it."""
    # The plain-socket shutdown, even for TLS: it wakes a blocked read or write in the
    # connection's thread without touching the SSL object that thread is using.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
