"""Render the registry for a scrape in the format and encoding the scraper asked for.

Families that stay the same until the next refresh (`FrozenFamilies`) are encoded, and
compressed, once per format and reused by every scrape; the rest of the registry, such as
the process metrics, is rendered live each time.
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

GZIP_LEVEL = 6
# wbits 16 + 15 wraps the deflate stream in a gzip header and trailer.
GZIP_WBITS = 16 + zlib.MAX_WBITS
OPENMETRICS_EOF = b"# EOF\n"

_Encoder = Callable[[Collector], bytes]


class Frozen:
    """Mark a family that is never changed once collected, so its text can be reused."""

    frozen_in: FrozenFamilies | None = None


class FrozenGaugeMetricFamily(Frozen, GaugeMetricFamily):
    """Hold a gauge family that no longer changes."""


class FrozenCounterMetricFamily(Frozen, CounterMetricFamily):
    """Hold a counter family that no longer changes until the next refresh."""


FrozenFamily = FrozenGaugeMetricFamily | FrozenCounterMetricFamily


class FrozenFamilies:
    """Hold families that no longer change and their text, encoded at most once per format."""

    def __init__(self, families: Sequence[FrozenFamily]) -> None:
        self.families = tuple(families)
        for family in self.families:
            family.frozen_in = self
        self._lock = threading.Lock()
        self._text: dict[str, bytes] = {}
        self._gzip: dict[str, _GzipPrefix] = {}

    def text(self, content_type: str, encoder: _Encoder) -> bytes:
        """Return the families encoded for `content_type`, without an OpenMetrics `# EOF`."""
        with self._lock:
            cached = self._text.get(content_type)
            if cached is None:
                cached = encoder(_Families(self.families)).removesuffix(OPENMETRICS_EOF)
                self._text[content_type] = cached
        return cached

    def gzip_prefix(self, content_type: str, encoder: _Encoder) -> _GzipPrefix:
        """Return the compressed start of a gzip stream holding `text`, and its compressor."""
        text = self.text(content_type, encoder)
        with self._lock:
            cached = self._gzip.get(content_type)
            if cached is None:
                compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, GZIP_WBITS)
                cached = _GzipPrefix(compressor.compress(text), compressor)
                self._gzip[content_type] = cached
        return cached


@dataclass(frozen=True)
class _GzipPrefix:
    head: bytes
    compressor: zlib._Compress

    def finish(self, rest: bytes) -> bytes:
        # A copy continues the shared stream, so each scrape compresses only its live part.
        compressor = self.compressor.copy()
        return self.head + compressor.compress(rest) + compressor.flush()


class _Families(Collector):
    """Stand in for a registry holding some families, for the client library's encoders."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        """Return the families given."""
        return self._families


def render(
    registry: CollectorRegistry, accept: str, accept_encoding: str
) -> tuple[bytes, list[tuple[str, str]]]:
    """Return the body and headers of a /metrics answer: text or OpenMetrics, gzip if asked."""
    encoder, content_type = choose_encoder(accept)
    frozen, live = _split(registry.collect())
    parts = [group.text(content_type, encoder) for group in frozen[1:]]
    parts.append(encoder(_Families(live)))
    headers = [("Content-Type", content_type)]
    if "gzip" in accept_encoding:
        headers.append(("Content-Encoding", "gzip"))
        if frozen:
            return frozen[0].gzip_prefix(content_type, encoder).finish(b"".join(parts)), headers
        return _gzip(b"".join(parts)), headers
    if frozen:
        parts.insert(0, frozen[0].text(content_type, encoder))
    return b"".join(parts), headers


def _split(metrics: Iterable[Metric]) -> tuple[list[FrozenFamilies], list[Metric]]:
    """Separate the frozen groups (in order of appearance) from the families to render now."""
    frozen: list[FrozenFamilies] = []
    live: list[Metric] = []
    for metric in metrics:
        group = metric.frozen_in if isinstance(metric, Frozen) else None
        if group is None:
            live.append(metric)
        elif group not in frozen:
            frozen.append(group)
    return frozen, live


def _gzip(body: bytes) -> bytes:
    compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, GZIP_WBITS)
    return compressor.compress(body) + compressor.flush()
