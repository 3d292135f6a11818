"""Render the registry for a scrape in the format and encoding the scraper asked for.

Families that stay the same until the next refresh (`FrozenFamilies`) are encoded, and
compressed, once per format and reused by every scrape. Every other family's text is
remembered per registry and reused while its samples are unchanged, so only what moved, such
as the process metrics, is encoded again.
"""

from __future__ import annotations

import threading
import weakref
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
    memo = _memo_of(registry)
    parts = [group.text(content_type, encoder) for group in frozen[1:]]
    parts.extend(memo.text(family, content_type, encoder) for family in live)
    parts.append(memo.trailer(content_type, encoder))
    headers = [("Content-Type", content_type), ("Vary", "Accept-Encoding")]
    if wants_gzip(accept_encoding):
        headers.append(("Content-Encoding", "gzip"))
        if frozen:
            return frozen[0].gzip_prefix(content_type, encoder).finish(b"".join(parts)), headers
        return _gzip(b"".join(parts)), headers
    if frozen:
        parts.insert(0, frozen[0].text(content_type, encoder))
    return b"".join(parts), headers


class _Memo:
    """Remember each live family's last text per format, reused while its samples are equal.

    The API counters change only while a target refreshes, so most scrapes reuse their text;
    the process metrics change every time and are encoded anew.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: dict[tuple[str, str], tuple[Metric, bytes]] = {}
        self._trailers: dict[str, bytes] = {}

    def text(self, family: Metric, content_type: str, encoder: _Encoder) -> bytes:
        """Return `family` encoded, without an OpenMetrics `# EOF`."""
        key = (content_type, family.name)
        with self._lock:
            last = self._last.get(key)
        # Metric equality compares name, type, help, unit and every sample.
        if last is not None and last[0] == family:
            return last[1]
        text = encoder(_Families([family])).removesuffix(OPENMETRICS_EOF)
        with self._lock:
            self._last[key] = (family, text)
        return text

    def trailer(self, content_type: str, encoder: _Encoder) -> bytes:
        """Return what the format puts after the last family: `# EOF` for OpenMetrics."""
        with self._lock:
            trailer = self._trailers.get(content_type)
            if trailer is None:
                trailer = self._trailers[content_type] = encoder(_Families([]))
        return trailer


# One memo per registry, forgotten with it.
_MEMOS: weakref.WeakKeyDictionary[CollectorRegistry, _Memo] = weakref.WeakKeyDictionary()
_MEMOS_LOCK = threading.Lock()


def _memo_of(registry: CollectorRegistry) -> _Memo:
    with _MEMOS_LOCK:
        memo = _MEMOS.get(registry)
        if memo is None:
            memo = _MEMOS[registry] = _Memo()
    return memo


def wants_gzip(accept_encoding: str) -> bool:
    """Tell whether `Accept-Encoding` accepts gzip, honouring `q=0` as a refusal."""
    for item in accept_encoding.split(","):
        name, _, params = item.strip().partition(";")
        if name.strip().lower() not in ("gzip", "*"):
            continue
        quality = params.strip().removeprefix("q=").strip() if params else "1"
        try:
            return float(quality) > 0
        except ValueError:
            return False
    return False


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
