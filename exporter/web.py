"""Route /metrics, the landing page, the health checks and /-/reload; run the HTTP server."""

from __future__ import annotations

import html
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from exporter import __version__
from exporter.connections import Limits, ThreadingServer, ThreadingServerV6
from exporter.exposition import render
from exporter.middleware import guard
from exporter.tls import ServerTls
from exporter.webconfig import WebConfig

if TYPE_CHECKING:
    from exporter.app import Exporter

StartResponse = Callable[..., Any]
Environ = dict[str, Any]
WsgiApp = Callable[[Environ, StartResponse], Iterable[bytes]]
READ = ("GET", "HEAD")
CHANGE = ("POST", "PUT")
RELOAD_PATH = "/-/reload"
ROUTES = {
    "/": READ,
    "/metrics": READ,
    "/probe": READ,
    "/healthz": READ,
    "/readyz": READ,
    RELOAD_PATH: CHANGE,
}
SCRAPE_TIMEOUT_HEADER = "HTTP_X_PROMETHEUS_SCRAPE_TIMEOUT_SECONDS"

log = logging.getLogger(__name__)


def make_app(exporter: Exporter, *, lifecycle: bool = False) -> WsgiApp:
    """Return the WSGI application that routes the exporter's few paths.

    `/-/reload` answers 403 unless `lifecycle` is on, as in Prometheus: every reload
    refreshes new targets at once, so it is not for anyone who can reach the port.
    """

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        path, method = environ.get("PATH_INFO", "/"), environ["REQUEST_METHOD"]
        methods = ROUTES.get(path)
        if methods is None:
            return _reply(start_response, "404 Not Found", b"not found: try /metrics\n")
        if method not in methods:
            return _reply(
                start_response,
                "405 Method Not Allowed",
                f"only {' and '.join(methods)}\n".encode(),
                [("Allow", ", ".join(methods))],
            )
        if path == RELOAD_PATH and not lifecycle:
            status, headers = "403 Forbidden", list[tuple[str, str]]()
            body = b"the lifecycle API is off; start with --web.enable-lifecycle\n"
        elif path == RELOAD_PATH:
            status, headers, body = _reload(exporter)
        elif path == "/metrics":
            status, headers, body = _metrics(exporter, environ)
        elif path == "/probe":
            status, headers, body = _probe(exporter, environ)
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
        return _reply(start_response, status, body, headers, head=method == "HEAD")

    return app


def _metrics(exporter: Exporter, environ: Environ) -> tuple[str, list[tuple[str, str]], bytes]:
    exporter.before_scrape(_scrape_timeout(environ))
    body, headers = render(
        exporter.registry, environ.get("HTTP_ACCEPT", ""), environ.get("HTTP_ACCEPT_ENCODING", "")
    )
    return "200 OK", headers, body


def _probe(exporter: Exporter, environ: Environ) -> tuple[str, list[tuple[str, str]], bytes]:
    query = parse_qs(environ.get("QUERY_STRING", ""))
    account, region = query.get("account", [""])[0], query.get("region", [""])[0]
    if not account or not region:
        return "400 Bad Request", [], b"/probe needs ?account=NAME&region=ID\n"
    try:
        registry = exporter.probe(account, region, _scrape_timeout(environ))
    except LookupError as err:
        return "400 Bad Request", [], f"{err}\n".encode()
    body, headers = render(
        registry, environ.get("HTTP_ACCEPT", ""), environ.get("HTTP_ACCEPT_ENCODING", "")
    )
    return "200 OK", headers, body


def _reload(exporter: Exporter) -> tuple[str, list[tuple[str, str]], bytes]:
    problems = exporter.try_reload()
    if problems:
        return "400 Bad Request", [], "".join(f"{p}\n" for p in problems).encode()
    return "200 OK", [], b"reloaded\n"


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
    *,
    head: bool = False,
) -> list[bytes]:
    headers = list(headers or [])
    if not any(name == "Content-Type" for name, _ in headers):
        headers.append(("Content-Type", "text/plain; charset=utf-8"))
    headers.append(("Content-Length", str(len(body))))
    start_response(status, headers)
    return [] if head else [body]


def _landing_page() -> bytes:
    version = html.escape(__version__)
    return (
        "<!doctype html><html><head><title>BCC image exporter</title></head><body>"
        f"<h1>BCC image exporter</h1><p>Version {version}</p><ul>"
        '<li><a href="metrics">metrics</a></li><li><a href="healthz">healthz</a></li>'
        '<li><a href="readyz">readyz</a></li></ul></body></html>\n'
    ).encode()


class HttpServer:
    """Run the WSGI app on a listen address such as `:10041` or `[::1]:10041`.

    The web config adds TLS, basic auth (on every route) and response headers; raises
    ConfigError if its TLS files cannot be used, OSError if the address cannot be bound.
    """

    def __init__(
        self,
        app: WsgiApp,
        host: str,
        port: int,
        web_config: WebConfig | None = None,
        limits: Limits | None = None,
    ) -> None:
        config = web_config or WebConfig()
        tls = ServerTls(config.tls) if config.tls is not None else None
        self._tls = tls is not None
        if config.users and tls is None:
            log.warning("basic auth without TLS: passwords cross the network in clear text")
        server_class = ThreadingServerV6 if ":" in host else ThreadingServer
        self._server = server_class((host, port), tls, limits or Limits())
        self._server.set_app(guard(app, config))
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.2,), daemon=True
        )

    @property
    def tls(self) -> bool:
        """Tell whether the server speaks TLS."""
        return self._tls

    @property
    def port(self) -> int:
        """Return the port actually bound (useful with port 0)."""
        return int(self._server.server_address[1])

    def start(self) -> None:
        """Serve in a background thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting, cut open connections and close the socket, in a fraction of a second."""
        started = time.monotonic()
        self._server.shutdown()
        self._server.server_close()
        log.debug("http server stopped in %.3fs", time.monotonic() - started)
