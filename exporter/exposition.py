"""Render the registry for a scrape in the format and encoding the scraper asked for."""

from __future__ import annotations

import gzip

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

GZIP_LEVEL = 6


def render(
    registry: CollectorRegistry, accept: str, accept_encoding: str
) -> tuple[bytes, list[tuple[str, str]]]:
    """Return the body and headers of a /metrics answer: text or OpenMetrics, gzip if asked."""
    encoder, content_type = choose_encoder(accept)
    body = encoder(registry)
    headers = [("Content-Type", content_type)]
    if "gzip" in accept_encoding:
        body = gzip.compress(body, compresslevel=GZIP_LEVEL)
        headers.append(("Content-Encoding", "gzip"))
    return body, headers
