"""Section 4: the client's CPU per 1,000 images against `json.loads` of the same pages.

The exporter's figure covers signing, fetching, parsing, checking and counting; the
baseline only decodes the very page bodies the simulator serves. The simulator runs in
another process, so only the client's CPU is counted.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from urllib.parse import urlsplit

import requests

from bench.harness import cpu_seconds, exporter_for, keys, median, refresh
from bench.plan import Plan, all_filter
from bench.simhost import Account, RemoteSimulators, ServerSpec
from bench.table import Row, at_most, ratio_row, seconds
from exporter.app import Exporter
from exporter.signer import Credentials, authorization, format_timestamp

SECTION = 4
TARGET = 1.5
REGION = "bj"
PAGE_SIZE = 1000
IMAGE_TYPES = ("All",)
PER_IMAGES = 1000
# Decode the bodies several times so the baseline is long enough to time well.
DECODE_ROUNDS = 5
# A refresh of 10,000 images takes a tenth of a second: take more runs than elsewhere.
RUNS_PER_REPEAT = 3


def run(plan: Plan) -> list[Row]:
    """Refresh one target of `plan.cpu_images` images, then decode its pages alone."""
    (key,) = keys(1)
    counts = all_filter(plan.cpu_images)
    spec = ServerSpec([Account(key.access_key_id, key.secret_access_key, {REGION: counts})])
    with RemoteSimulators([spec]) as remote:
        (url,) = remote.urls
        bodies = _page_bodies(url, Credentials(key.access_key_id, key.secret_access_key))
        exporter = exporter_for(
            [(key, REGION, f"{url}/{REGION}")], page_size=PAGE_SIZE, image_types=IMAGE_TYPES
        )
        try:
            refresh(exporter)  # warm up
            ratios, ours, theirs = [], [], []
            for _ in range(plan.repeats * RUNS_PER_REPEAT):
                spent = _cpu_of_refresh(exporter)
                decoded = _cpu_of_decoding(bodies)
                ours.append(spent)
                theirs.append(decoded)
                ratios.append(spent / decoded)
        finally:
            exporter.stop()
    scale = PER_IMAGES / plan.cpu_images
    return [
        ratio_row(
            SECTION,
            f"CPU per 1,000 images (fetch, parse, count), {plan.cpu_images:,} images in "
            f"{len(bodies)} pages",
            plan.repeats * RUNS_PER_REPEAT,
            seconds(median(ours) * scale),
            seconds(median(theirs) * scale),
            median(ratios),
            f"<= {TARGET}",
            at_most(TARGET),
        )
    ]


def _cpu_of_refresh(exporter: Exporter) -> float:
    started = cpu_seconds()
    refresh(exporter)
    return cpu_seconds() - started


def _cpu_of_decoding(bodies: list[bytes]) -> float:
    started = cpu_seconds()
    for _ in range(DECODE_ROUNDS):
        for body in bodies:
            json.loads(body)
    return (cpu_seconds() - started) / DECODE_ROUNDS


def _page_bodies(url: str, credentials: Credentials) -> list[bytes]:
    """Fetch every page of the `All` filter as raw bytes, following nextMarker."""
    path = f"/{REGION}/v2/image"
    bodies: list[bytes] = []
    marker: str | None = None
    with requests.Session() as session:
        while True:
            params = {"imageType": "All", "maxKeys": str(PAGE_SIZE)}
            if marker:
                params["marker"] = marker
            stamp = format_timestamp(datetime.now(timezone.utc))
            headers = {"host": urlsplit(url).netloc, "x-bce-date": stamp}
            headers["authorization"] = authorization(
                credentials, "GET", path, params, headers, stamp
            )
            response = session.get(url + path, params=params, headers=headers, timeout=30)
            response.raise_for_status()
            bodies.append(response.content)
            document = json.loads(response.content)
            if not document["isTruncated"]:
                return bodies
            marker = document["nextMarker"]
