"""Aggregate listed images into counts per label group, page by page, de-duplicated by id."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from exporter.errors import PaginationError

# The mapping from metric label to ListImages field.
LABEL_FIELDS = {
    "image_type": "type",
    "os_type": "osType",
    "os_name": "osName",
    "os_version": "osVersion",
    "os_arch": "osArch",
    "status": "status",
}
MISSING_VALUE = "unknown"
MAX_LABEL_LENGTH = 128

# Which image kinds each imageType filter returns; `All` and `EbcTotal` cover several.
FILTER_COVERS = {
    "All": ("System", "Custom", "Integration"),
    "EbcTotal": ("EbcSystem", "EbcCustom"),
}


def owner_filters(filters: Iterable[str]) -> dict[str, str]:
    """Map each image kind to the one configured filter whose listing counts it.

    An image found through another filter is skipped there, so the documented API needs no
    memory of ids; only images of kinds no filter owns are de-duplicated by id.
    """
    owners: dict[str, str] = {}
    for name in filters:
        for kind in FILTER_COVERS.get(name, (name,)):
            if owners.get(kind) != kind:
                owners[kind] = name
    return owners


@dataclass(frozen=True)
class ImageRecord:
    """Keep what the per-image series show of one image."""

    id: str
    name: str
    image_type: str
    os_name: str
    os_version: str
    status: str
    created: float | None


class Tally:
    """Count images by the configured labels for one refresh of one target.

    Images of the kinds in `info_types` are also kept one by one, at most `max_records`;
    the rest are only counted in `dropped`.
    """

    def __init__(
        self,
        labels: tuple[str, ...],
        owners: dict[str, str],
        info_types: tuple[str, ...] = (),
        max_records: int = 0,
    ) -> None:
        self.labels = labels
        self.counts: Counter[tuple[str, ...]] = Counter()
        self.records: list[ImageRecord] = []
        self.dropped = 0
        self._record_ids: set[str] = set()
        self._info_types = frozenset(info_types)
        self._max_records = max_records
        self._fields = [LABEL_FIELDS[label] for label in labels]
        self._owners = owners
        self._unowned_ids: set[str] = set()
        self._lock = threading.Lock()

    def add_page(self, images: list[dict[str, Any]], listed_by: str) -> None:
        """Count one page of images; safe to call from the threads listing each filter.

        Raw field values are counted first and turned into label values once per distinct
        group, so the common image costs a lookup and a tuple; images that need more (kept
        one by one, or of a kind no filter owns) take the path of `add`.
        """
        owners, fields, info_types = self._owners, self._fields, self._info_types
        raw: Counter[tuple[Any, ...]] = Counter()
        others = []
        for image in images:
            kind = image.get("type")
            owner = owners.get(kind) if isinstance(kind, str) else None
            if owner == listed_by and kind not in info_types:
                raw[tuple(map(image.get, fields))] += 1
            elif owner is None or owner == listed_by:
                others.append(image)
        with self._lock:
            for values, count in raw.items():
                self.counts[tuple(map(_text, values))] += count
            for image in others:
                self.add(image, listed_by)

    def add(self, image: dict[str, Any], listed_by: str) -> None:
        """Count one image seen through the `listed_by` filter, unless another filter owns it."""
        kind = image.get("type")
        owner = self._owners.get(kind) if isinstance(kind, str) else None
        if owner is None:
            key = _text(image.get("id"))
            if key != MISSING_VALUE:
                if key in self._unowned_ids:
                    return
                self._unowned_ids.add(key)
        elif owner != listed_by:
            return
        self.counts[tuple(_text(image.get(field)) for field in self._fields)] += 1
        if kind in self._info_types:
            self._keep(image)

    def _keep(self, image: dict[str, Any]) -> None:
        image_id = _text(image.get("id"))
        if image_id == MISSING_VALUE or len(image_id) >= MAX_LABEL_LENGTH:
            self.dropped += 1  # no usable id to name the series by
            return
        if image_id in self._record_ids:
            # Two series with the same labels would make the whole page invalid.
            raise PaginationError(
                "invalid_response", f"image {image_id} appears twice in one listing"
            )
        if len(self.records) >= self._max_records:
            self.dropped += 1
            return
        self._record_ids.add(image_id)
        self.records.append(
            ImageRecord(
                id=image_id,
                name=_text(image.get("name")),
                image_type=_text(image.get("type")),
                os_name=_text(image.get("osName")),
                os_version=_text(image.get("osVersion")),
                status=_text(image.get("status")),
                created=_timestamp(image.get("createTime")),
            )
        )

    @property
    def total(self) -> int:
        """Return the number of images counted."""
        return sum(self.counts.values())


def _timestamp(value: object) -> float | None:
    # BCC writes createTime as `2015-06-17T10:37:02Z`; anything else gets no timestamp series.
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _text(value: object) -> str:
    if value is None or value == "":
        return MISSING_VALUE
    # JSON may carry lone surrogates, which no exposition can encode: replace them.
    return str(value)[:MAX_LABEL_LENGTH].encode("utf-8", "replace").decode("utf-8")
