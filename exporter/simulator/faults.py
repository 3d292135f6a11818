"""Define injectable faults, match them to requests and shape the broken replies they cause."""

from __future__ import annotations

import threading
from dataclasses import dataclass, fields

from exporter.errors import ConfigError
from exporter.simulator.dataset import Image
from exporter.simulator.listing import Page
from exporter.simulator.reply import HTML_TYPE, Reply, encode_json, error_reply

LATENCY = "latency"
# These answer before authentication, as a gateway or an overloaded front end would.
RESPONSE_KINDS = frozenset({"error", "throttle", "html", "empty", "malformed"})
# These alter a page that would otherwise have been served successfully.
PAGE_KINDS = frozenset(
    {
        "truncated",
        "marker_loop",
        "missing_next_marker",
        "oversized_page",
        "not_a_list",
        "reset",
        "slow_body",
        "duplicate_image",
        "bad_image",
        "wrong_types",
        "huge_body",
    }
)
HUGE_BODY_BYTES = 17 * 1024 * 1024
FAULT_KINDS = frozenset({LATENCY}) | RESPONSE_KINDS | PAGE_KINDS
DEFAULT_STATUS = {"error": 500, "throttle": 429, "html": 502, "empty": 200}
DEFAULT_CODE = {"error": "InternalError", "throttle": "RequestRateLimitExceeded"}
HTML_PAGE = (
    "<html><head><title>{status} Bad Gateway</title></head><body>"
    "<center><h1>{status} Bad Gateway</h1></center><hr><center>nginx</center></body></html>"
)
MALFORMED_BODY = b'{"marker": "", "isTruncated": fal<<upstream hiccup>>'


@dataclass(frozen=True)
class Fault:
    """Describe one fault: what to break, which requests it hits and how many times."""

    kind: str
    access_key_id: str | None = None
    region: str | None = None
    image_type: str | None = None
    page: int | None = None
    times: int | None = None
    status: int | None = None
    code: str | None = None
    message: str | None = None
    delay: float = 0.0
    retry_after: float | None = None

    def __post_init__(self) -> None:
        problems = fault_problems(self)
        if problems:
            raise ConfigError(problems)

    def matches(self, call: CallFacts) -> bool:
        """Tell whether every matcher that is set agrees with the request."""
        return (
            self.access_key_id in (None, call.access_key_id)
            and self.region in (None, call.region)
            and self.image_type in (None, call.image_type)
            and self.page in (None, call.page)
        )


FAULT_FIELDS = tuple(item.name for item in fields(Fault))


@dataclass(frozen=True)
class CallFacts:
    """Hold what fault matchers look at; `page` is None when the marker is unreadable."""

    access_key_id: str | None
    region: str
    image_type: str
    page: int | None


def fault_problems(fault: Fault) -> list[str]:
    """List what is wrong with a fault's fields; empty when it is usable."""
    problems = []
    if fault.kind not in FAULT_KINDS:
        problems.append(f"unknown fault kind {fault.kind!r}; use one of {sorted(FAULT_KINDS)}")
    if fault.times is not None and fault.times < 1:
        problems.append(f"times must be >= 1 or null (forever), got {fault.times}")
    if fault.page is not None and fault.page < 1:
        problems.append(f"page is 1-based, got {fault.page}")
    if fault.status is not None and not 100 <= fault.status <= 599:
        problems.append(f"status must be an HTTP status 100-599, got {fault.status}")
    if fault.delay < 0 or (fault.retry_after is not None and fault.retry_after < 0):
        problems.append("delay and retry_after are seconds and must be >= 0")
    return problems


class FaultBook:
    """Keep faults in the order added and hand them out, counting down `times`; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[tuple[Fault, list[int | None]]] = []

    def add(self, fault: Fault) -> None:
        """Append a fault; it is tried after every fault added before it."""
        with self._lock:
            self._entries.append((fault, [fault.times]))

    def clear(self) -> None:
        """Forget every fault."""
        with self._lock:
            self._entries.clear()

    def take(self, call: CallFacts, kinds: frozenset[str]) -> list[Fault]:
        """Use up every matching latency fault and the first matching fault of `kinds`."""
        taken: list[Fault] = []
        with self._lock:
            for fault, remaining in self._entries:
                if remaining[0] == 0 or not fault.matches(call):
                    continue
                if fault.kind == LATENCY or fault.kind in kinds:
                    if remaining[0] is not None:
                        remaining[0] -= 1
                    taken.append(fault)
                    if fault.kind != LATENCY:
                        break
        return taken


def response_fault_reply(fault: Fault, request_id: str) -> Reply:
    """Build the reply of a fault that answers instead of the API."""
    extra = (("Retry-After", f"{fault.retry_after:g}"),) if fault.retry_after is not None else ()
    status = fault.status or DEFAULT_STATUS.get(fault.kind, 200)
    if fault.kind in DEFAULT_CODE:
        code = fault.code or DEFAULT_CODE[fault.kind]
        message = fault.message or f"simulated {fault.kind}"
        return error_reply(status, code, message, request_id, extra)
    if fault.kind == "html":
        body = HTML_PAGE.format(status=status).encode("ascii")
        return Reply(status, body, content_type=HTML_TYPE, headers=extra)
    if fault.kind == "empty":
        return Reply(status, b"", headers=extra)
    return Reply(fault.status or 200, MALFORMED_BODY, headers=extra)


def page_fault_reply(fault: Fault, page: Page, view: list[Image]) -> Reply:
    """Build the reply of a fault that damages a page; `view` is the whole filtered listing."""
    document = page.document()
    if fault.kind == "marker_loop":
        document.update(isTruncated=True, nextMarker=page.marker)
    elif fault.kind == "missing_next_marker":
        document["isTruncated"] = True
        document.pop("nextMarker", None)
    elif fault.kind == "oversized_page" and view:
        document["images"] = page.images + _overflow(page, view)
    elif fault.kind == "not_a_list":
        document["images"] = {"image": page.images}
    elif fault.kind == "duplicate_image" and page.images:
        # Repeat the image just before this page, as a listing that shifted while paging does.
        earlier = view[page.offset - 1] if page.offset > 0 else page.images[0]
        document["images"] = [earlier, *page.images[1:]] if page.offset else [earlier, earlier]
    elif fault.kind == "bad_image" and page.images:
        document["images"] = [str(page.images[0].get("id")), *page.images[1:]]
    elif fault.kind == "wrong_types" and page.images:
        document["images"] = [{**page.images[0], "osName": 7, "status": ["Available"]}]
    elif fault.kind == "huge_body":
        document["padding"] = " " * HUGE_BODY_BYTES
    body = encode_json(document)
    status = fault.status or 200
    if fault.kind == "truncated":
        return Reply(status, body[: len(body) // 2])
    if fault.kind == "reset":
        return Reply(status, body, cut_after=len(body) // 2)
    if fault.kind == "slow_body":
        return Reply(status, body, trickle_seconds=fault.delay)
    return Reply(status, body)


def _overflow(page: Page, view: list[Image]) -> list[Image]:
    # Half a page more than asked for, continuing the listing and wrapping at its end.
    wanted = page.max_keys + max(1, page.max_keys // 2) - len(page.images)
    start = page.offset + len(page.images)
    return [view[(start + step) % len(view)] for step in range(wanted)]
