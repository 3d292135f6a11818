"""Section 6: a refresh against a plain loop over the official SDK's `list_images`.

Both clients list the same filters from the same simulators and count images by the same
labels. The SDK always lists `/v2/image`, which the simulator serves as region `bj`, so each
region is its own simulator on its own port, and the exporter is pointed at
`{port}/bj` for that region: both clients read the very same bytes. The simulators run in
another process, so only the clients' CPU is counted.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from urllib.parse import urlsplit

import baidubce.protocol
from baidubce.auth.bce_credentials import BceCredentials
from baidubce.bce_client_configuration import BceClientConfiguration
from baidubce.services.bcc.bcc_client import BccClient

from bench.harness import (
    REGIONS,
    Certificates,
    Key,
    counted_images,
    cpu_seconds,
    exporter_for,
    keys,
    make_certificates,
    median,
    refresh,
)
from bench.plan import Plan, large_region, scaled_region
from bench.simhost import Account, RemoteSimulators, ServerSpec
from bench.table import Row, at_most, ratio_row, seconds
from exporter.app import Exporter
from exporter.settings import DEFAULT_IMAGE_TYPES

SECTION = 6
TARGET = 0.5
SDK_REGION = "bj"
# The SDK's attribute for each label field: it turns camelCase into snake_case.
SDK_FIELDS = ("type", "os_type", "os_name", "os_version", "os_arch", "status")
Target = tuple[Key, str, str]


def run(plan: Plan) -> list[Row]:
    """Compare both clients on one large region and on many accounts and regions."""
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as folder:
        certificates = make_certificates(Path(folder))
        for scheme in ("http", "https"):
            rows.extend(_compare_over(plan, scheme, certificates))
    return rows


def _compare_over(plan: Plan, scheme: str, certificates: Certificates) -> list[Row]:
    tls = (str(certificates.cert), str(certificates.key)) if scheme == "https" else None
    (single_key,) = keys(1)
    many_keys = keys(plan.sdk_accounts)
    single = ServerSpec(
        [
            Account(
                single_key.access_key_id,
                single_key.secret_access_key,
                {SDK_REGION: large_region(plan.sdk_single)},
            )
        ],
        tls=tls,
    )
    regions = [
        ServerSpec(
            [
                Account(
                    k.access_key_id,
                    k.secret_access_key,
                    {SDK_REGION: scaled_region(i, plan.sdk_many)},
                )
                for k in many_keys
            ],
            seed=100 + i,
            tls=tls,
        )
        for i in range(plan.sdk_regions)
    ]
    with RemoteSimulators([single, *regions]) as remote:
        single_url, *region_urls = remote.urls
        cases = {
            f"1 region, {plan.sdk_single:,} images": [(single_key, SDK_REGION, single_url)],
            f"{plan.sdk_accounts} accounts x {plan.sdk_regions} regions, "
            f"{plan.sdk_many:,} images each": [
                (key, region, url)
                for key in many_keys
                for region, url in zip(REGIONS, region_urls, strict=False)
            ],
        }
        rows = []
        for name, targets in cases.items():
            rows.extend(_compare(plan, f"{name}, {scheme.upper()}", targets, certificates.ca))
    return rows


def _compare(plan: Plan, name: str, targets: Sequence[Target], ca_file: Path) -> list[Row]:
    exporter = exporter_for(
        ((key, region, f"{url}/{SDK_REGION}") for key, region, url in targets),
        extra={"http": {"ca_file": str(ca_file)}},
    )
    ours: list[tuple[float, float]] = []
    theirs: list[tuple[float, float]] = []
    try:
        with _sdk_trusts(ca_file):
            _check_same_total(exporter, targets)  # also warms both up
            for repeat in range(plan.sdk_repeats):
                # Alternate who goes first, so neither always runs on a warmer machine.
                if repeat % 2 == 0:
                    ours.append(_timed_refresh(exporter))
                    theirs.append(_timed_sdk(targets))
                else:
                    theirs.append(_timed_sdk(targets))
                    ours.append(_timed_refresh(exporter))
    finally:
        exporter.stop()
    rows = []
    for index, what in ((0, "wall time"), (1, "CPU time")):
        rows.append(
            ratio_row(
                SECTION,
                f"refresh {what} vs SDK loop, {name}",
                plan.sdk_repeats,
                seconds(median(m[index] for m in ours)),
                seconds(median(t[index] for t in theirs)),
                median(m[index] / t[index] for m, t in zip(ours, theirs, strict=True)),
                f"<= {TARGET}",
                at_most(TARGET),
            )
        )
    return rows


def _check_same_total(exporter: Exporter, targets: Sequence[Target]) -> None:
    refresh(exporter)
    counted = sum(_sdk_counts(targets).values())
    if counted != counted_images(exporter):
        raise RuntimeError(
            f"the SDK loop counted {counted}, the exporter {counted_images(exporter)}"
        )


def _timed_refresh(exporter: Exporter) -> tuple[float, float]:
    cpu = cpu_seconds()
    wall = refresh(exporter)
    return wall, cpu_seconds() - cpu


def _timed_sdk(targets: Sequence[Target]) -> tuple[float, float]:
    cpu, started = cpu_seconds(), time.perf_counter()
    _sdk_counts(targets)
    return time.perf_counter() - started, cpu_seconds() - cpu


def _sdk_counts(targets: Sequence[Target]) -> Counter[tuple[object, ...]]:
    """List every filter of every target with the SDK, page by page, and count by labels."""
    counts: Counter[tuple[object, ...]] = Counter()
    for key, _region, url in targets:
        parts = urlsplit(url)
        config = BceClientConfiguration(
            credentials=BceCredentials(key.access_key_id, key.secret_access_key),
            endpoint=parts.netloc,
            protocol=baidubce.protocol.HTTPS
            if parts.scheme == "https"
            else baidubce.protocol.HTTP,
        )
        client = BccClient(config)
        for image_type in DEFAULT_IMAGE_TYPES:
            marker = None
            while True:
                response = client.list_images(image_type=image_type, marker=marker, max_keys=1000)
                for image in response.images:
                    counts[tuple(getattr(image, field, None) for field in SDK_FIELDS)] += 1
                if not response.is_truncated:
                    break
                marker = response.next_marker
    return counts


@contextlib.contextmanager
def _sdk_trusts(ca_file: Path) -> Iterator[None]:
    # The SDK uses Python's default TLS context, which reads its CA file from SSL_CERT_FILE.
    before = os.environ.get("SSL_CERT_FILE")
    os.environ["SSL_CERT_FILE"] = str(ca_file)
    try:
        yield
    finally:
        if before is None:
            del os.environ["SSL_CERT_FILE"]
        else:
            os.environ["SSL_CERT_FILE"] = before
