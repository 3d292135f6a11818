"""Serve each connection in its own thread with bounded request heads and phase deadlines."""

from __future__ import annotations

import contextlib
import http.client
import logging
import socket
import ssl
import sys
from dataclasses import dataclass
from io import BufferedIOBase
from socketserver import ThreadingMixIn
from typing import IO, TYPE_CHECKING, Any, cast
from wsgiref.simple_server import ServerHandler, WSGIRequestHandler, WSGIServer

from exporter.deadlines import Deadlines, cut
from exporter.tls import ServerTls

if TYPE_CHECKING:
    from exporter.web import WsgiApp

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    """Bound what one client may cost: time per phase, bytes of request head, connections."""

    handshake_timeout: float = 5.0
    read_timeout: float = 5.0
    write_timeout: float = 30.0
    request_line_bytes: int = 8 * 1024
    head_bytes: int = 64 * 1024
    header_lines: int = 100
    connections: int = 256


class _HeadReader:
    """Read header lines for http.client, refusing a head over its byte or line budget."""

    def __init__(self, stream: Any, budget: int, lines: int) -> None:
        self._stream = stream
        self._budget = budget
        self._lines = lines

    def readline(self, size: int = -1) -> bytes:
        """Read one line; raise LineTooLong or HTTPException, which become a 431."""
        self._lines -= 1
        if self._lines < 0:
            raise http.client.HTTPException("too many header lines")
        limit = self._budget + 1 if size < 0 else min(size, self._budget + 1)
        line: bytes = self._stream.readline(limit)
        self._budget -= len(line)
        if self._budget < 0:
            raise http.client.LineTooLong("request head")
        return line


class _ResponseWriter(ServerHandler):
    """Give the response its own deadline and log failures through logging, not stderr."""

    request_handler: _RequestHandler

    def finish_response(self) -> None:
        handler = self.request_handler
        handler.server.deadlines.watch(handler.connection, handler.server.limits.write_timeout)
        super().finish_response()

    def log_exception(self, exc_info: Any) -> None:
        if isinstance(exc_info[1], OSError):
            log.debug("http response not sent", extra={"error": str(exc_info[1])})
        else:
            log.error("http request failed", exc_info=exc_info)


class _RequestHandler(WSGIRequestHandler):
    """Read one request within the head limits, then run the app; one request a connection."""

    server: ThreadingServer

    def setup(self) -> None:
        super().setup()
        # A bound on each read and write; the watchdog bounds each phase as a whole.
        limits = self.server.limits
        self.connection.settimeout(max(limits.read_timeout, limits.write_timeout))

    def handle(self) -> None:
        limits = self.server.limits
        self.raw_requestline = self.rfile.readline(limits.request_line_bytes + 1)
        if not self.raw_requestline:
            return
        if len(self.raw_requestline) > limits.request_line_bytes:
            self.requestline, self.request_version, self.command = "", "", ""
            self.send_error(414)
            self._discard_input()
            return
        if not self._parse_head():
            self._discard_input()
            return
        self.server.deadlines.watch(self.connection, None)
        streams = cast("tuple[IO[bytes], IO[bytes]]", (self.rfile, self.wfile))
        writer = _ResponseWriter(*streams, self.get_stderr(), self.get_environ(), multithread=True)
        writer.request_handler = self
        writer.run(self.server.app)

    def get_environ(self) -> dict[str, Any]:
        environ: dict[str, Any] = super().get_environ()
        if isinstance(self.connection, ssl.SSLSocket):
            environ["HTTPS"] = "on"
        return environ

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http request client=%s line=%s", self.address_string(), format % args)

    def _parse_head(self) -> bool:
        limits = self.server.limits
        budget = limits.head_bytes - len(self.raw_requestline)
        stream = self.rfile
        self.rfile = cast("BufferedIOBase", _HeadReader(stream, budget, limits.header_lines + 1))
        try:
            return bool(self.parse_request())
        finally:
            self.rfile = stream

    def _discard_input(self) -> None:
        # Signal the end of the error, then read what the client is still sending, so that
        # closing does not reset the connection before it reads the error; the read
        # deadline bounds this.
        with contextlib.suppress(OSError):
            self.wfile.flush()
            socket.socket.shutdown(self.connection, socket.SHUT_WR)
            while self.rfile.read1(64 * 1024):
                pass


class ThreadingServer(ThreadingMixIn, WSGIServer):
    """Accept in one thread; handshake, read and answer each connection in its own thread."""

    daemon_threads = True
    allow_reuse_address = True
    # socketserver's default backlog of 5 drops connection attempts beyond it while the
    # accept loop waits for the GIL; their SYNs are retried only after 1 s, 3 s, 7 s...
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], tls: ServerTls | None, limits: Limits) -> None:
        self.tls = tls
        self.limits = limits
        self.deadlines = Deadlines()
        super().__init__(address, _RequestHandler)

    @property
    def app(self) -> WsgiApp:
        """Return the WSGI application set with `set_app`."""
        app = self.get_app()
        if app is None:
            raise RuntimeError("set_app was not called")
        return app

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        """Start the deadline watchdog, then accept until `shutdown`."""
        self.deadlines.start()
        super().serve_forever(poll_interval)

    def process_request(self, request: Any, client_address: Any) -> None:
        if len(self.deadlines) >= self.limits.connections:
            log.debug("http connection refused: too many open connections")
            self.shutdown_request(request)
            return
        first = self.limits.handshake_timeout if self.tls else self.limits.read_timeout
        self.deadlines.watch(request, first)
        super().process_request(request, client_address)

    def finish_request(self, request: Any, client_address: Any) -> None:
        fd, conn = request.fileno(), request
        try:
            if self.tls is not None:
                conn = self.tls.context().wrap_socket(
                    request, server_side=True, do_handshake_on_connect=False
                )
                if not self._handshake(conn):
                    return
            _RequestHandler(conn, client_address, self)
        finally:
            self.deadlines.forget(fd)
            if conn is not request:
                cut(conn)
                conn.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, OSError):
            log.debug("http connection failed", extra={"error": str(error)})
        else:
            log.error("http connection failed", exc_info=True)

    def server_close(self) -> None:
        super().server_close()
        self.deadlines.stop()

    def _handshake(self, conn: ssl.SSLSocket) -> bool:
        # Same descriptor, new object: the watchdog must now shut down the TLS socket.
        self.deadlines.watch(conn, self.limits.handshake_timeout)
        conn.settimeout(self.limits.handshake_timeout)
        conn.do_handshake()
        if self.tls is not None and not self.tls.peer_allowed(conn):
            log.debug("http connection refused: the client certificate names no allowed SAN")
            return False
        self.deadlines.watch(conn, self.limits.read_timeout)
        return True


class ThreadingServerV6(ThreadingServer):
    """Listen on an IPv6 address."""

    address_family = socket.AF_INET6
