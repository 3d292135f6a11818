"""Run a simulated BCC ListImages API on loopback for tests, the demo and benchmarks."""

from __future__ import annotations

import logging
import socket
import ssl
import threading
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any

from exporter.errors import ConfigError
from exporter.simulator.accounts import SimulatedAccount, default_accounts
from exporter.simulator.dataset import FILTERS, Image, RegionImages, build_region, count_problems
from exporter.simulator.faults import Fault, FaultBook
from exporter.simulator.handler import SimulatorHTTPServer
from exporter.simulator.pipeline import RecordedRequest

LOG = logging.getLogger(__name__)
DEFAULT_HOST = "127.0.0.1"
POLL_INTERVAL_SECONDS = 0.05
HANDSHAKE_TIMEOUT_SECONDS = 10
# socketserver's default backlog of 5 drops connections beyond it; their requests then wait
# for a TCP retransmission (200 ms or more), which looks like a slow API.
LISTEN_BACKLOG = 128


class Simulator:
    """Serve seeded image listings for some accounts, with injectable faults and a request log."""

    def __init__(
        self,
        accounts: Iterable[SimulatedAccount] | None = None,
        *,
        seed: int = 1,
        host: str = DEFAULT_HOST,
        port: int = 0,
        clock_offset: float = 0.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.seed = seed
        self.host = host
        self.port = port
        self.clock_offset = clock_offset
        self.ssl_context = ssl_context
        self.fault_book = FaultBook()
        self._lock = threading.Lock()
        self._accounts: dict[str, SimulatedAccount] = {}
        self._regions: dict[tuple[str, str], RegionImages] = {}
        self._requests: list[RecordedRequest] = []
        self._server: SimulatorHTTPServer | None = None
        self._thread: threading.Thread | None = None
        for account in default_accounts() if accounts is None else accounts:
            self._add_account(account)

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> Simulator:
        """Bind the port and serve in a background thread; return self."""
        if self._server is not None:
            return self
        address = (self.host, self.port)
        self._server = (
            _Server(address, self)
            if self.ssl_context is None
            else _TlsServer(address, self, self.ssl_context)
        )
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": POLL_INTERVAL_SECONDS},
            name=f"bcc-simulator-{self.port}",
            daemon=True,
        )
        self._thread.start()
        LOG.info("simulator started", extra={"url": self.url})
        return self

    def stop(self) -> None:
        """Stop serving, close kept-alive connections and release the port."""
        server, thread = self._server, self._thread
        if server is None:
            return
        server.shutdown()
        server.close_connections()
        server.server_close()
        if thread is not None:
            thread.join()
        self._server = self._thread = None
        LOG.info("simulator stopped", extra={"url": self.url})

    @property
    def url(self) -> str:
        """Return the base URL, e.g. `http://127.0.0.1:8765`, or `https://…` with TLS."""
        scheme = "http" if self.ssl_context is None else "https"
        return f"{scheme}://{self.host}:{self.port}"

    @property
    def endpoint(self) -> str:
        """Return an endpoint template with a `{region}` placeholder for the exporter config."""
        return self.url + "/{region}"

    @property
    def requests(self) -> list[RecordedRequest]:
        """Return a snapshot of every request answered so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        """Empty the request log."""
        with self._lock:
            self._requests.clear()

    def images(
        self, access_key_id: str, region: str, image_type: str | None = None
    ) -> list[Image]:
        """Return copies of a region's images as served: every kind, or one imageType filter."""
        if image_type is not None and image_type not in FILTERS:
            raise ConfigError([f"unknown imageType {image_type!r}; use one of {list(FILTERS)}"])
        self._account(access_key_id)
        images = self.region_images(access_key_id, region)
        if images is None:
            return []
        chosen = images.every_kind() if image_type is None else images.view(image_type)
        return [dict(image) for image in chosen]

    def set_images(self, access_key_id: str, region: str, counts: Mapping[str, int]) -> None:
        """Regenerate one region's images from counts per type, replacing what it held."""
        self._account(access_key_id)
        problems = count_problems(counts)
        if problems:
            raise ConfigError([f"region {region!r}: {problem}" for problem in problems])
        generated = build_region(self.seed, access_key_id, region, counts)
        with self._lock:
            self._regions[(access_key_id, region)] = generated

    def add_fault(self, fault: Fault) -> None:
        """Inject a fault; faults are tried in the order added."""
        self.fault_book.add(fault)

    def clear_faults(self) -> None:
        """Remove every fault."""
        self.fault_book.clear()

    def account_map(self) -> Mapping[str, SimulatedAccount]:
        """Return the accounts by access key id."""
        with self._lock:
            return dict(self._accounts)

    def region_images(self, access_key_id: str, region: str) -> RegionImages | None:
        """Return one region's images, None when the account has none there."""
        with self._lock:
            return self._regions.get((access_key_id, region))

    def record(self, request: RecordedRequest) -> None:
        """Append an answered request to the log."""
        with self._lock:
            self._requests.append(request)

    def _add_account(self, account: SimulatedAccount) -> None:
        if account.access_key_id in self._accounts:
            raise ConfigError([f"access key id {account.access_key_id!r} is listed twice"])
        self._accounts[account.access_key_id] = account
        for region, counts in account.images.items():
            self.set_images(account.access_key_id, region, counts)

    def _account(self, access_key_id: str) -> SimulatedAccount:
        account = self.account_map().get(access_key_id)
        if account is None:
            raise ConfigError([f"no simulated account has access key id {access_key_id!r}"])
        return account


class _Server(SimulatorHTTPServer):
    """Accept many connections at once and send each write without waiting for an ACK."""

    request_queue_size = LISTEN_BACKLOG

    def get_request(self) -> tuple[socket.socket, Any]:
        """Accept a connection with Nagle's algorithm off.

        The handler writes the head and the body separately; with Nagle on, a short body
        waits for the client's delayed ACK of the head, about 40 ms on Linux.
        """
        connection, address = super().get_request()
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return connection, address


class _TlsServer(_Server):
    """Serve HTTPS; each handshake runs in its connection's thread, not in the accept loop."""

    def __init__(
        self, address: tuple[str, int], backend: Simulator, context: ssl.SSLContext
    ) -> None:
        super().__init__(address, backend)
        self._context = context

    def get_request(self) -> tuple[socket.socket, Any]:
        """Accept a connection and wrap it for TLS without shaking hands yet."""
        connection, address = super().get_request()
        wrapped = self._context.wrap_socket(
            connection, server_side=True, do_handshake_on_connect=False
        )
        return wrapped, address

    def finish_request(
        self, request: socket.socket | tuple[bytes, socket.socket], client_address: Any
    ) -> None:
        """Shake hands, then serve; drop a client that gives up or distrusts the certificate."""
        if isinstance(request, ssl.SSLSocket):
            try:
                request.settimeout(HANDSHAKE_TIMEOUT_SECONDS)
                request.do_handshake()
            except OSError as err:  # ssl.SSLError is an OSError too
                LOG.debug("tls handshake failed", extra={"error": str(err)})
                return
        super().finish_request(request, client_address)
