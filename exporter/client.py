"""List the images of one account in one region through BCC's signed, paginated API."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import requests

from exporter.apimetrics import ApiMetrics
from exporter.clock import SigningClock
from exporter.deadline import GuardedAdapter, deadline_guard
from exporter.errors import ApiError, PaginationError
from exporter.responses import Listing, Page, parse_error, parse_page
from exporter.settings import HttpConfig
from exporter.signer import Credentials, sign_headers, uri_encode

LIST_IMAGES_PATH = "/v2/image"
MAX_PAGES = 10_000
MAX_BODY_BYTES = 16 * 1024 * 1024
READ_CHUNK_BYTES = 64 * 1024
DEFAULT_PORTS = {"http": 80, "https": 443}
REQUEST_EXPIRED = "RequestExpired"

log = logging.getLogger(__name__)


class BccClient:
    """Fetch ListImages pages for one (account, region) over one reused HTTP session."""

    def __init__(
        self,
        account: str,
        region: str,
        endpoint: str,
        credentials: Callable[[], Credentials],
        http: HttpConfig,
        metrics: ApiMetrics,
        *,
        page_size: int,
        max_pages: int = MAX_PAGES,
        pool_size: int = 8,
    ) -> None:
        self.account, self.region = account, region
        self._credentials = credentials
        self._http = http
        self._metrics = metrics
        self._page_size = page_size
        self._max_pages = max_pages
        self._base, self._host, self._path = _split_endpoint(endpoint)
        self._session = requests.Session()
        adapter = GuardedAdapter(pool_connections=1, pool_maxsize=pool_size)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        self._session.trust_env = False
        self._session.verify = http.ca_file or True
        self._clock = SigningClock()
        self._closed = False
        metrics.start_target(account, region)

    def list_pages(self, image_type: str, deadline: float) -> Iterator[list[dict[str, Any]]]:
        """Yield the pages of one imageType filter, following nextMarker, before `deadline`.

        `deadline` is a `time.monotonic()` value; raises ApiError or PaginationError.
        """
        listing = Listing()
        marker: str | None = None
        for _ in range(self._max_pages):
            if self._closed:
                # A reload or a stop retired this client: its listing is no longer wanted.
                raise ApiError("connection", "the client was retired by a reload or a stop")
            page = self._fetch_with_retries(image_type, marker, deadline, listing)
            yield page.images
            if page.next_marker is None:
                return
            marker = page.next_marker
        raise PaginationError(
            "invalid_response",
            f"imageType={image_type} needs more than {self._max_pages} pages; giving up",
        )

    def close(self) -> None:
        """Close the pooled connections; the next request opens a new one."""
        self._session.close()

    @property
    def retired(self) -> bool:
        """Tell whether a reload or a stop let go of this client."""
        return self._closed

    def retire(self) -> None:
        """Close the connections and refuse further pages: a reload or a stop let go of it."""
        self._closed = True
        self.close()

    def _fetch_with_retries(
        self, image_type: str, marker: str | None, deadline: float, listing: Listing
    ) -> Page:
        attempt = 0
        while True:
            attempt += 1
            signed_with = self._clock.offset
            try:
                return self._fetch(image_type, marker, deadline, listing)
            except ApiError as err:
                if attempt >= self._http.max_attempts:
                    raise
                if err.code == REQUEST_EXPIRED:
                    self._correct_clock(err, signed_with)
                    continue
                delay = self._backoff(attempt, err.retry_after)
                if not err.retryable or time.monotonic() + delay >= deadline:
                    raise
                log.warning(
                    "retrying BCC API request",
                    extra={
                        **self._fields(image_type),
                        "code": err.code,
                        "attempt": attempt,
                        "delay_seconds": round(delay, 3),
                    },
                )
                time.sleep(delay)

    def _correct_clock(self, err: ApiError, signed_with: float) -> None:
        # A skewed local clock makes every signature expire: sign on the API's time instead,
        # once; if that does not help, the error stands. Another filter's request may have
        # corrected the clock already, after this one was signed.
        if self._clock.offset != signed_with:
            return
        skew = self._clock.correct()
        if skew is None:
            raise err
        log.warning(
            "clock skew: signing with the BCC API's time from now on",
            extra={"account": self.account, "region": self.region, "skew_seconds": skew},
        )

    def _fields(self, image_type: str) -> dict[str, str]:
        return {"account": self.account, "region": self.region, "image_type": image_type}

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        # Exponential back-off with jitter keeps many targets from retrying in lock step.
        base = min(self._http.max_backoff, self._http.initial_backoff * 2.0 ** (attempt - 1))
        delay = base * random.uniform(0.5, 1.0)
        return max(delay, retry_after) if retry_after is not None else delay

    def _fetch(
        self, image_type: str, marker: str | None, deadline: float, listing: Listing
    ) -> Page:
        params = {"imageType": image_type, "maxKeys": str(self._page_size)}
        if marker is not None:
            params["marker"] = marker
        started = time.monotonic()
        code: str | None = None
        try:
            status, body, headers = self._send(params, deadline)
            if not 200 <= status < 300:
                raise parse_error(status, body, headers)
            page = parse_page(body, self._page_size, listing)
        except ApiError as err:
            code = err.code
            raise
        finally:
            self._metrics.observe(self.account, self.region, time.monotonic() - started, code)
        log.debug(
            "listed page",
            extra={**self._fields(image_type), "images": len(page.images), "marker": marker},
        )
        return page

    def _send(self, params: dict[str, str], deadline: float) -> tuple[int, bytes, dict[str, str]]:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ApiError("timeout", "the refresh deadline passed before the request was sent")
        # Build the query ourselves so the wire carries exactly the encoding that was signed.
        query = "&".join(f"{uri_encode(k)}={uri_encode(v)}" for k, v in sorted(params.items()))
        headers = sign_headers(
            self._credentials(), "GET", self._host, self._path, params, self._clock.now()
        )
        timeout = (
            min(self._http.connect_timeout, remaining),
            min(self._http.read_timeout, remaining),
        )
        sent_at = time.time()
        with deadline_guard(remaining) as guard:
            try:
                with self._session.get(
                    f"{self._base}{self._path}?{query}",
                    headers=headers,
                    timeout=timeout,
                    stream=True,
                    allow_redirects=False,
                ) as response:
                    skew = self._clock.observe(response.headers.get("Date"), sent_at, time.time())
                    if skew is not None:
                        self._metrics.clock_skew.labels(self.account, self.region).set(skew)
                    body = _read_bounded(response, deadline)
                    answer_headers = {k.lower(): v for k, v in response.headers.items()}
                    return response.status_code, body, answer_headers
            except requests.RequestException as err:
                raise _transport_error(err, guard.expired, self._base) from err


def _transport_error(err: requests.RequestException, expired: bool, base: str) -> ApiError:
    if expired:
        return ApiError("timeout", "the answer did not arrive before the refresh deadline")
    if isinstance(err, requests.Timeout):
        return ApiError(
            "timeout", f"BCC API did not answer in time: {type(err).__name__}", retryable=True
        )
    return ApiError("connection", f"cannot reach {base}: {type(err).__name__}", retryable=True)


def _read_bounded(response: requests.Response, deadline: float) -> bytes:
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_content(READ_CHUNK_BYTES):
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise ApiError(
                "invalid_response",
                f"response body is larger than {MAX_BODY_BYTES // (1024 * 1024)} MiB; "
                "lower page_size or check the endpoint",
            )
        if time.monotonic() > deadline:
            raise ApiError(
                "timeout", "the response body did not arrive before the refresh deadline"
            )
        chunks.append(chunk)
    return b"".join(chunks)


def _split_endpoint(endpoint: str) -> tuple[str, str, str]:
    """Return (scheme://netloc, Host header value, base path) for an endpoint URL."""
    parts = urlsplit(endpoint)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    if parts.port is not None and parts.port == DEFAULT_PORTS.get(parts.scheme):
        netloc = netloc.rsplit(":", 1)[0]
    path = parts.path.rstrip("/") + LIST_IMAGES_PATH
    return f"{parts.scheme}://{netloc}", netloc, path
