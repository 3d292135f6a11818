"""Parse ListImages responses and BCE error bodies into pages and ApiErrors."""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from exporter.errors import ApiError, PaginationError

# Codes from BCE's common error table; any other code is reported as http_<status> so the
# `code` label stays a bounded set, while the log line keeps the code BCC sent.
KNOWN_ERROR_CODES = frozenset(
    {
        "AccessDenied",
        "InappropriateJSON",
        "InternalError",
        "InvalidAccessKeyId",
        "InvalidHTTPAuthHeader",
        "InvalidHTTPRequest",
        "InvalidParameter",
        "InvalidURI",
        "MalformedJSON",
        "QualifyNotPass",
        "RequestExpired",
        "ServiceUnavailable",
        "SignatureDoesNotMatch",
    }
)
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
NEVER_RETRIED = frozenset({"SignatureDoesNotMatch", "InvalidAccessKeyId", "AccessDenied"})
THROTTLE_CODE = "throttled"
# Fields read for labels and de-duplication: each must be a string when present.
CHECKED_FIELDS = ("id", "type", "osType", "osName", "osVersion", "osArch", "status")


@dataclass(frozen=True)
class Page:
    """Hold one page of images and the marker of the next page, if any."""

    images: list[dict[str, Any]]
    next_marker: str | None


class Listing:
    """Remember what one filter's listing has seen: markers, and the ids of the last page.

    Only the previous page's ids are kept, so memory stays flat however long the listing is.
    """

    def __init__(self) -> None:
        self.markers: set[str] = set()
        self.previous_ids: frozenset[str] = frozenset()


def parse_page(body: bytes, max_keys: int, listing: Listing) -> Page:
    """Check a 200 body against the documented shape; refuse anything that could miscount."""
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError) as err:
        raise _invalid(f"response is not JSON ({_describe_body(body)})") from err
    if not isinstance(doc, dict):
        raise _invalid(f"response is JSON {type(doc).__name__}, expected an object")
    images = doc.get("images")
    if images is None:
        images = []
    if not isinstance(images, list):
        raise _invalid(f"'images' is {type(images).__name__}, expected a list")
    if len(images) > max_keys:
        raise _invalid(f"page holds {len(images)} images, more than maxKeys={max_keys}")
    _check_images(images, listing)
    truncated = doc.get("isTruncated", False)
    if not isinstance(truncated, bool):
        raise _invalid(f"'isTruncated' is {type(truncated).__name__}, expected true or false")
    return Page(images, _next_marker(doc, truncated, listing.markers))


def parse_error(status: int, body: bytes, headers: Mapping[str, str]) -> ApiError:
    """Build the ApiError for a non-2xx response, whatever its body holds."""
    code, message, request_id = _error_fields(body)
    request_id = request_id or headers.get("x-bce-request-id")
    throttled = status == 429 or _looks_throttled(code, message)
    retryable = status in RETRYABLE_STATUSES or throttled
    if code in KNOWN_ERROR_CODES:
        label = code
    elif throttled:
        label = THROTTLE_CODE
    else:
        label = f"http_{status}"
    if code is None:
        message = f"BCC API answered HTTP {status} with {_describe_body(body)}"
    elif code != label:
        message = f"{code}: {message}"
    return ApiError(
        label,
        message or f"BCC API answered HTTP {status}",
        status=status,
        request_id=request_id,
        retryable=retryable and code not in NEVER_RETRIED,
        retry_after=parse_retry_after(headers.get("retry-after")),
    )


def parse_retry_after(value: str | None) -> float | None:
    """Read `Retry-After` as seconds, from either a number or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _next_marker(doc: dict[str, Any], truncated: bool, seen: set[str]) -> str | None:
    if not truncated:
        return None
    marker = doc.get("nextMarker")
    if not isinstance(marker, str) or not marker:
        raise PaginationError("invalid_response", "isTruncated is true but nextMarker is missing")
    if marker in seen:
        raise PaginationError(
            "invalid_response", "nextMarker repeats an earlier marker; the listing would loop"
        )
    seen.add(marker)
    return marker


def _check_images(images: list[Any], listing: Listing) -> None:
    ids = []
    for image in images:
        if not isinstance(image, dict):
            raise _invalid(f"'images' holds a {type(image).__name__}, expected an object")
        for field in CHECKED_FIELDS:
            value = image.get(field)
            if value is not None and not isinstance(value, str):
                raise _invalid(
                    f"image field {field!r} is {type(value).__name__}, expected a string"
                )
        if image.get("id"):
            ids.append(image["id"])
    page_ids = frozenset(ids)
    repeated = (page_ids & listing.previous_ids) or (len(page_ids) < len(ids))
    if repeated:
        raise PaginationError(
            "invalid_response",
            "the same image appears twice in the listing; it changed while paging, "
            "so the counts would be wrong",
        )
    listing.previous_ids = page_ids


def _error_fields(body: bytes) -> tuple[str | None, str | None, str | None]:
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        return None, None, None
    if not isinstance(doc, dict) or not isinstance(doc.get("code"), str):
        return None, None, None
    message, request_id = doc.get("message"), doc.get("requestId")
    return (
        doc["code"],
        message if isinstance(message, str) else None,
        request_id if isinstance(request_id, str) else None,
    )


def _looks_throttled(code: str | None, message: str | None) -> bool:
    text = f"{code or ''} {message or ''}".lower()
    return "ratelimit" in text or "throttl" in text or "too many requests" in text


def _describe_body(body: bytes) -> str:
    if not body.strip():
        return "an empty body"
    if body.lstrip()[:1] == b"<":
        return "an HTML page, probably from a proxy"
    return f"{len(body)} bytes that are not JSON"


def _invalid(message: str) -> ApiError:
    return ApiError("invalid_response", message)
