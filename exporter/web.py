"""Serve /metrics, the landing page and the health checks over a threaded WSGI server."""

from __future__ import annotations

import html
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from exporter import __version__
from exporter.exposition import render

if TYPE_CHECKING:
    from exporter.app import Exporter

StartResponse = Callable[..., Any]
Environ = dict[str, Any]
WsgiApp = Callable[[Environ, StartResponse], Iterable[bytes]]
ROUTES = ("/", "/metrics", "/healthz", "/readyz")
SCRAPE_TIMEOUT_HEADER = "HTTP_X_PROMETHEUS_SCRAPE_TIMEOUT_SECONDS"

log = logging.getLogger(__name__)


def make_app(exporter: Exporter) -> WsgiApp:
    """Return the WSGI application that routes the exporter's few paths."""

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        path, method = environ.get("PATH_INFO", "/"), environ["REQUEST_METHOD"]
        if path not in ROUTES:
            return _reply(start_response, "404 Not Found", b"not found: try /metrics\n")
        if method not in ("GET", "HEAD"):
            return _reply(
                start_response,
                "405 Method Not Allowed",
                b"only GET and HEAD\n",
                [("Allow", "GET, HEAD")],
            )
        if path == "/metrics":
            status, headers, body = _metrics(exporter, environ)
        elif path == "/healthz":
            status, headers, body = "200 OK", [], b"ok\n"
        elif path == "/readyz":
            problems = exporter.readiness_problems()
            status = "503 Service Unavailable" if problems else "200 OK"
            body = ("\n".join(problems) if problems else "ready").encode() + b"\n"
            headers = []
        else:
            status, headers, body = "200 OK", [], _landing_page()
            return _reply(
                start_response, status, body, [("Content-Type", "text/html; charset=utf-8")]
            )
        return _reply(start_response, status, b"" if method == "HEAD" else body, headers)

    return app


def _metrics(exporter: Exporter, environ: Environ) -> tuple[str, list[tuple[str, str]], bytes]:
    exporter.before_scrape(_scrape_timeout(environ))
    body, headers = render(
        exporter.registry, environ.get("HTTP_ACCEPT", ""), environ.get("HTTP_ACCEPT_ENCODING", "")
    )
    return "200 OK", headers, body


def _scrape_timeout(environ: Environ) -> float | None:
    try:
        return float(environ[SCRAPE_TIMEOUT_HEADER])
    except (KeyError, ValueError):
        return None


def _reply(
    start_response: StartResponse,
    status: str,
    body: bytes,
    headers: list[tuple[str, str]] | None = None,
) -> list[bytes]:
    headers = list(headers or [])
    if not any(name == "Content-Type" for name, _ in headers):
        headers.append(("Content-Type", "text/plain; charset=utf-8"))
    headers.append(("Content-Length", str(len(body))))
    start_response(status, headers)
    return [body]


def _landing_page() -> bytes:
    version = html.escape(__version__)
    return (
        "<!doctype html><html><head><title>BCC image exporter</title></head><body>"
        f"<h1>BCC image exporter</h1><p>Version {version}</p><ul>"
        '<li><a href="metrics">metrics</a></li><li><a href="healthz">healthz</a></li>'
        '<li><a href="readyz">readyz</a></li></ul></body></html>\n'
    ).encode()


class _QuietHandler(WSGIRequestHandler):
    """Log requests at debug level instead of writing every scrape to stderr."""

    timeout = 60

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http request client=%s line=%s", self.address_string(), format % args)


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    """Serve each request in its own daemon thread so a slow client blocks no one else."""

    daemon_threads = True
    allow_reuse_address = True


class _ThreadingServerV6(_ThreadingServer):
    address_family = socket.AF_INET6


class HttpServer:
    """Run the WSGI app on a listen address such as `:10041` or `[::1]:10041`."""

    def __init__(
        self, app: Callable[[Environ, StartResponse], Iterable[bytes]], host: str, port: int
    ) -> None:
        server_class = _ThreadingServerV6 if ":" in host else _ThreadingServer
        self._server = make_server(host, port, app, server_class, _QuietHandler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.2,), daemon=True
        )

    @property
    def port(self) -> int:
        """Return the port actually bound (useful with port 0)."""
        return int(self._server.server_address[1])

    def start(self) -> None:
        """Serve in a background thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting requests and close the socket, within a fraction of a second."""
        started = time.monotonic()
        self._server.shutdown()
        self._server.server_close()
        log.debug("http server stopped in %.3fs", time.monotonic() - started)
