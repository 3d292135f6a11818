"""Read ListImages query parameters, issue opaque markers and cut one page of a listing."""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from exporter.simulator.dataset import DEFAULT_FILTER, FILTERS, Image
from exporter.simulator.reply import RejectedRequestError

DEFAULT_MAX_KEYS = 1000
MAX_KEYS_LIMIT = 1000


@dataclass(frozen=True)
class ListQuery:
    """Hold the validated parameters of one ListImages request."""

    image_type: str
    marker: str | None
    max_keys: int
    image_name: str | None


@dataclass(frozen=True)
class Page:
    """Hold one served page; `marker` is the marker that points at this very page."""

    number: int
    marker: str
    requested_marker: str
    max_keys: int
    offset: int
    images: list[Image]
    next_marker: str | None

    def document(self) -> dict[str, Any]:
        """Return the response document BCC sends for this page."""
        body: dict[str, Any] = {
            "marker": self.requested_marker,
            "isTruncated": self.next_marker is not None,
        }
        if self.next_marker is not None:
            body["nextMarker"] = self.next_marker
        body["maxKeys"] = self.max_keys
        body["images"] = self.images
        return body


def image_type_of(params: Mapping[str, str]) -> str:
    """Return the imageType filter a request asks for, `All` when absent or empty."""
    return params.get("imageType") or DEFAULT_FILTER


def max_keys_of(params: Mapping[str, str]) -> int | None:
    """Return maxKeys as sent, or None when absent or not a number."""
    try:
        return int(params["maxKeys"])
    except (KeyError, ValueError):
        return None


def parse_query(params: Mapping[str, str]) -> ListQuery:
    """Validate the parameters; BCC answers 400 InvalidParameter for any bad one."""
    image_type = image_type_of(params)
    if image_type not in FILTERS:
        raise _invalid(f"imageType {image_type!r} is not one of {', '.join(FILTERS)}")
    max_keys = DEFAULT_MAX_KEYS
    if "maxKeys" in params:
        parsed = max_keys_of(params)
        if parsed is None or parsed < 1:
            raise _invalid(f"maxKeys {params['maxKeys']!r} must be a whole number >= 1")
        max_keys = min(parsed, MAX_KEYS_LIMIT)
    return ListQuery(image_type, params.get("marker") or None, max_keys, params.get("imageName"))


def page_number_of(marker: str | None) -> int | None:
    """Return the 1-based page a marker points at, 1 without one, None when unreadable."""
    if not marker:
        return 1
    decoded = _decode_marker(marker)
    return decoded[2] if decoded else None


def listing_salt(seed: int, access_key_id: str, region: str, query: ListQuery) -> str:
    """Derive the salt that ties a marker to one account, region, filter and name."""
    key = f"{seed}|{access_key_id}|{region}|{query.image_type}|{query.image_name or ''}"
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:10]


def cut_page(view: list[Image], query: ListQuery, salt: str) -> Page:
    """Slice the page a query asks for out of a filter view; reject foreign markers."""
    offset, number = 0, 1
    if query.marker is not None:
        decoded = _decode_marker(query.marker)
        if decoded is None or decoded[0] != salt:
            raise _invalid("marker is not one this listing issued; start again without it")
        _, offset, number = decoded
    end = offset + query.max_keys
    next_marker = encode_marker(salt, end, number + 1) if end < len(view) else None
    return Page(
        number=number,
        marker=encode_marker(salt, offset, number),
        requested_marker=query.marker or "",
        max_keys=query.max_keys,
        offset=offset,
        images=view[offset:end],
        next_marker=next_marker,
    )


def encode_marker(salt: str, offset: int, number: int) -> str:
    """Encode a position opaquely, the way a client must treat it anyway."""
    raw = f"{salt}:{offset}:{number}".encode("ascii")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _decode_marker(marker: str) -> tuple[str, int, int] | None:
    try:
        raw = base64.urlsafe_b64decode(marker + "=" * (-len(marker) % 4)).decode("ascii")
        salt, offset, number = raw.split(":")
        position = (salt, int(offset), int(number))
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    return position if position[1] >= 0 and position[2] >= 1 else None


def _invalid(message: str) -> RejectedRequestError:
    return RejectedRequestError(400, "InvalidParameter", message)
