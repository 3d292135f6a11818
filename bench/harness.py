"""Build exporters for the benchmark, refresh them, time them and make TLS certificates."""

from __future__ import annotations

import math
import resource
import statistics
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trustme

from exporter.app import Exporter
from exporter.config import parse_config
from exporter.inventory import FILTER_COVERS
from exporter.settings import DEFAULT_IMAGE_TYPES

REGIONS = ("bj", "gz", "su", "hkg", "fwh", "bd", "cd", "fsh", "sin", "yq")
LOOPBACK = "127.0.0.1"
REFRESH_TIMEOUT_SECONDS = 300.0


@dataclass(frozen=True)
class Key:
    """Hold one simulated account's name and keys."""

    name: str
    access_key_id: str
    secret_access_key: str


def keys(count: int) -> list[Key]:
    """Return `count` distinct fake accounts."""
    return [Key(f"acct{i}", f"{i:02x}" * 16, f"5e{i:02x}" * 8) for i in range(1, count + 1)]


def exporter_for(
    targets: Iterable[tuple[Key, str, str]],
    *,
    page_size: int = 1000,
    image_types: Sequence[str] = DEFAULT_IMAGE_TYPES,
    extra: Mapping[str, Any] | None = None,
) -> Exporter:
    """Build an exporter for (key, region, endpoint) triples, one config account per triple.

    Each triple gets its own account entry so every region may have its own endpoint.
    """
    accounts = [
        {
            "name": f"{key.name}-{region}",
            "access_key_id": key.access_key_id,
            "secret_access_key": key.secret_access_key,
            "regions": [region],
            "endpoint": endpoint,
        }
        for key, region, endpoint in targets
    ]
    data: dict[str, Any] = {
        "accounts": accounts,
        "page_size": page_size,
        "image_types": list(image_types),
        "refresh": {"timeout": f"{REFRESH_TIMEOUT_SECONDS:g}s"},
        **(extra or {}),
    }
    return Exporter(parse_config(data, environ={}))


def refresh(exporter: Exporter, *, cold: bool = True) -> float:
    """Refresh every target at once, as the scheduler does at start; return the wall time.

    `cold` closes the kept-alive connections first: between refreshes minutes apart, a real
    API's load balancer has closed them anyway.
    """
    if cold:
        for target in exporter.targets:
            target.client.close()
    started = time.perf_counter()
    deadline = time.monotonic() + REFRESH_TIMEOUT_SECONDS
    futures = [exporter.scheduler.submit(target, deadline) for target in exporter.targets]
    for future in futures:
        future.result(timeout=REFRESH_TIMEOUT_SECONDS + 5)
    elapsed = time.perf_counter() - started
    down = [
        f"{t.account}/{t.region}" for t in exporter.targets if not (t.outcome and t.outcome.up)
    ]
    if down:
        errors = {t.outcome.error for t in exporter.targets if t.outcome and not t.outcome.up}
        raise RuntimeError(f"refresh failed for {', '.join(down)}: {sorted(map(str, errors))}")
    return elapsed


def counted_images(exporter: Exporter) -> int:
    """Return how many images the exporter's snapshots hold."""
    return sum(sum(t.snapshot.counts.values()) for t in exporter.targets if t.snapshot)


def run_together(work: Sequence[Callable[[threading.Barrier], None]]) -> float:
    """Run each callable in its own thread, released together; return seconds until all end.

    Each callable is handed the barrier and waits on it where its timed part begins.
    """
    barrier = threading.Barrier(len(work) + 1)
    threads = [threading.Thread(target=job, args=(barrier,)) for job in work]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


def cpu_seconds() -> float:
    """Return the CPU time (user and system) of this process, every thread included."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def filter_sizes(counts: Mapping[str, int], image_types: Sequence[str]) -> list[int]:
    """Return how many images each imageType filter lists for a region's counts."""
    return [
        sum(counts.get(kind, 0) for kind in FILTER_COVERS.get(name, (name,)))
        for name in image_types
    ]


def minimum_calls(sizes: Iterable[int], page_size: int) -> int:
    """Return the fewest ListImages calls that list every filter: at least one each."""
    return sum(max(1, math.ceil(n / page_size)) for n in sizes)


def median(values: Iterable[float]) -> float:
    """Return the median."""
    return statistics.median(list(values))


@dataclass(frozen=True)
class Certificates:
    """Point at PEM files: a throwaway CA, and a certificate and key for 127.0.0.1."""

    ca: Path
    cert: Path
    key: Path


def make_certificates(folder: Path) -> Certificates:
    """Write a fresh CA and a loopback server certificate into `folder`."""
    ca = trustme.CA()
    issued = ca.issue_cert(LOOPBACK)
    files = Certificates(folder / "ca.pem", folder / "cert.pem", folder / "key.pem")
    ca.cert_pem.write_to_path(str(files.ca))
    issued.cert_chain_pems[0].write_to_path(str(files.cert))
    issued.private_key_pem.write_to_path(str(files.key))
    return files
