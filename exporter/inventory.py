"""Aggregate listed images into counts per label group, page by page, de-duplicated by id."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable
from typing import Any

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


class Tally:
    """Count images by the configured labels for one refresh of one target."""

    def __init__(self, labels: tuple[str, ...], owners: dict[str, str]) -> None:
        self.labels = labels
        self.counts: Counter[tuple[str, ...]] = Counter()
        self._fields = [LABEL_FIELDS[label] for label in labels]
        self._owners = owners
        self._unowned_ids: set[str] = set()
        self._lock = threading.Lock()

    def add_page(self, images: list[dict[str, Any]], listed_by: str) -> None:
        """Count one page of images; safe to call from the threads listing each filter."""
        with self._lock:
            for image in images:
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

    @property
    def total(self) -> int:
        """Return the number of images counted."""
        return sum(self.counts.values())


def _text(value: object) -> str:
    if value is None or value == "":
        return MISSING_VALUE
    return str(value)[:MAX_LABEL_LENGTH]
