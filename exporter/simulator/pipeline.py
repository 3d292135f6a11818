"""Answer one request to the simulated BCC API: route, inject faults, authenticate, list."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from exporter.simulator.accounts import SimulatedAccount
from exporter.simulator.auth import access_key_of, verify_request
from exporter.simulator.dataset import Image, RegionImages
from exporter.simulator.faults import (
    LATENCY,
    PAGE_KINDS,
    RESPONSE_KINDS,
    CallFacts,
    FaultBook,
    page_fault_reply,
    response_fault_reply,
)
from exporter.simulator.listing import (
    ListQuery,
    cut_page,
    image_type_of,
    listing_salt,
    max_keys_of,
    page_number_of,
    parse_query,
)
from exporter.simulator.reply import RejectedRequestError, Reply, encode_json, error_reply

DEFAULT_REGION = "bj"
ROUTE = re.compile(r"(?:/(?P<region>[^/]+))?/v2/image")
ALLOWED_METHOD = "GET"
PHASE_ONE_KINDS = RESPONSE_KINDS | {LATENCY}


@dataclass(frozen=True)
class Incoming:
    """Hold one decoded request: path percent-decoded, header names lower-case."""

    method: str
    raw_path: str
    path: str
    params: Mapping[str, str]
    headers: Mapping[str, str]
    request_id: str


@dataclass(frozen=True)
class RecordedRequest:
    """Record one answered request, rejected ones included, for tests to inspect."""

    access_key_id: str | None
    region: str
    image_type: str
    marker: str | None
    max_keys: int | None
    status: int
    code: str | None
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    method: str = ALLOWED_METHOD


class Backend(Protocol):
    """Describe what the pipeline needs from the simulator that owns it."""

    seed: int
    clock_offset: float
    fault_book: FaultBook

    def account_map(self) -> Mapping[str, SimulatedAccount]:
        """Return the accounts by access key id."""

    def region_images(self, access_key_id: str, region: str) -> RegionImages | None:
        """Return one region's images, None when the account has none there."""

    def record(self, request: RecordedRequest) -> None:
        """Append a request to the log."""


def route(path: str) -> str | None:
    """Return the region a path lists; plain `/v2/image` means `bj`; None when unrouted."""
    found = ROUTE.fullmatch(path)
    if found is None:
        return None
    return found.group("region") or DEFAULT_REGION


def answer(backend: Backend, request: Incoming) -> Reply:
    """Produce the reply to one request, faults included."""
    region = route(request.path)
    if region is None:
        message = f"no resource at {request.path}; ListImages lives at /{{region}}/v2/image"
        return error_reply(404, "NoSuchResource", message, request.request_id)
    if request.method != ALLOWED_METHOD:
        message = f"{request.method} is not allowed; ListImages takes GET"
        allow = (("Allow", ALLOWED_METHOD),)
        return error_reply(405, "MethodNotAllowed", message, request.request_id, allow)

    call = CallFacts(
        access_key_of(request.headers.get("authorization")),
        region,
        image_type_of(request.params),
        page_number_of(request.params.get("marker")),
    )
    early = backend.fault_book.take(call, PHASE_ONE_KINDS)
    _sleep(sum(fault.delay for fault in early if fault.kind == LATENCY))
    for fault in early:
        if fault.kind in RESPONSE_KINDS:
            return response_fault_reply(fault, request.request_id)

    return _list_images(backend, request, region, call)


def recorded(request: Incoming, reply: Reply) -> RecordedRequest:
    """Summarize a request and its reply for the request log."""
    return RecordedRequest(
        access_key_id=access_key_of(request.headers.get("authorization")),
        region=route(request.path) or "",
        image_type=image_type_of(request.params),
        marker=request.params.get("marker"),
        max_keys=max_keys_of(request.params),
        status=reply.status,
        code=reply.code,
        path=request.raw_path,
        headers=dict(request.headers),
        method=request.method,
    )


def _list_images(backend: Backend, request: Incoming, region: str, call: CallFacts) -> Reply:
    try:
        now = time.time() + backend.clock_offset
        accounts = backend.account_map()
        account = verify_request(
            accounts, request.method, request.path, request.params, request.headers, now
        )
        query = parse_query(request.params)
        view = _view(backend, account.access_key_id, region, query)
        salt = listing_salt(backend.seed, account.access_key_id, region, query)
        page = cut_page(view, query, salt)
    except RejectedRequestError as rejected:
        return error_reply(rejected.status, rejected.code, rejected.message, request.request_id)

    for fault in backend.fault_book.take(call, PAGE_KINDS):
        return page_fault_reply(fault, page, view)
    return Reply(200, encode_json(page.document()))


def _view(backend: Backend, access_key_id: str, region: str, query: ListQuery) -> list[Image]:
    images = backend.region_images(access_key_id, region)
    view = images.view(query.image_type) if images is not None else []
    if query.image_name is not None:
        return [image for image in view if image.get("name") == query.image_name]
    return view


def _sleep(seconds: float) -> None:
    if seconds > 0:
        time.sleep(seconds)
