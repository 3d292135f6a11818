"""Carry simulator replies over HTTP/1.1 keep-alive, including deliberately broken ones."""

from __future__ import annotations

import contextlib
import logging
import math
import socket
import struct
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, unquote, urlsplit

from exporter.simulator.pipeline import Backend, Incoming, answer, recorded
from exporter.simulator.reply import Reply

LOG = logging.getLogger(__name__)
IDLE_TIMEOUT_SECONDS = 60
TRICKLE_STEP_SECONDS = 0.05
RESET_PAUSE_SECONDS = 0.05


class SimulatorHTTPServer(ThreadingHTTPServer):
    """Serve the simulator on daemon threads and close open connections on shutdown."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], backend: Backend) -> None:
        super().__init__(address, SimulatorHandler)
        self.backend = backend
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def track(self, connection: socket.socket, open_: bool) -> None:
        """Remember or forget a client connection."""
        with self._connections_lock:
            if open_:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def close_connections(self) -> None:
        """Shut down every kept-alive connection so idle handler threads end."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class SimulatorHandler(BaseHTTPRequestHandler):
    """Decode a request, let the pipeline answer it, write the reply, record it."""

    protocol_version = "HTTP/1.1"
    server_version = "BCC-Simulator"
    timeout = IDLE_TIMEOUT_SECONDS
    server: SimulatorHTTPServer

    def setup(self) -> None:
        """Register the connection so a shutdown can close it."""
        super().setup()
        self.server.track(self.connection, True)

    def finish(self) -> None:
        """Unregister the connection."""
        try:
            super().finish()
        finally:
            self.server.track(self.connection, False)

    def do_GET(self) -> None:
        """Serve ListImages."""
        self._serve()

    do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_GET  # noqa: N815

    def date_time_string(self, timestamp: float | None = None) -> str:
        """Stamp `Date` with the simulated clock, so that clients can measure a skew."""
        if timestamp is None:
            timestamp = time.time() + self.server.backend.clock_offset
        return super().date_time_string(timestamp)

    def version_string(self) -> str:
        """Name the server without Python's version."""
        return self.server_version

    def log_message(self, format: str, *args: object) -> None:
        """Send http.server's access log to debug level."""
        LOG.debug("http request", extra={"line": format % args})

    def _serve(self) -> None:
        self._discard_body()
        request = self._incoming()
        reply = answer(self.server.backend, request)
        # Record before writing, so a client that has its answer always finds it in the log.
        self.server.backend.record(recorded(request, reply))
        self._send(reply, request.request_id)

    def _incoming(self) -> Incoming:
        target = urlsplit(self.path)
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            headers.setdefault(name.strip().lower(), value)
        return Incoming(
            method=self.command,
            raw_path=target.path,
            path=unquote(target.path),
            params=dict(parse_qsl(target.query, keep_blank_values=True)),
            headers=headers,
            request_id=str(uuid.uuid4()),
        )

    def _discard_body(self) -> None:
        length = self.headers.get("Content-Length")
        if length and length.isdigit():
            self.rfile.read(int(length))
        elif self.headers.get("Transfer-Encoding"):
            self.close_connection = True

    def _send(self, reply: Reply, request_id: str) -> None:
        try:
            self._send_head(reply, request_id)
            if self.command == "HEAD":
                return
            if reply.cut_after is not None:
                self._reset_after(reply.body[: reply.cut_after])
            elif reply.trickle_seconds > 0:
                self._trickle(reply.body, reply.trickle_seconds)
            else:
                self.wfile.write(reply.body)
        except OSError:
            # The client gave up (a timeout, usually); nothing is left to answer.
            self.close_connection = True

    def _send_head(self, reply: Reply, request_id: str) -> None:
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        self.send_header("x-bce-request-id", request_id)
        for name, value in reply.headers:
            self.send_header(name, value)
        self.end_headers()

    def _trickle(self, body: bytes, seconds: float) -> None:
        steps = max(1, min(len(body), int(seconds / TRICKLE_STEP_SECONDS)))
        size = math.ceil(len(body) / steps)
        for start in range(0, len(body), size):
            time.sleep(seconds / steps)
            self.wfile.write(body[start : start + size])

    def _reset_after(self, part: bytes) -> None:
        self.wfile.write(part)
        time.sleep(RESET_PAUSE_SECONDS)
        # A zero linger time makes close() send RST instead of a polite FIN.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.rfile.close()  # the reader holds the socket open; the writer does not
        self.connection.close()
