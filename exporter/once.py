"""Refresh every target once and write the exposition: for cron and the textfile collector."""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
from pathlib import Path

from prometheus_client import generate_latest

from exporter.app import Exporter

log = logging.getLogger(__name__)


def run_once(exporter: Exporter, output: Path | None) -> int:
    """Refresh all targets, print or atomically write the metrics; 1 if any target failed."""
    deadline = time.monotonic() + exporter.config.refresh.timeout
    futures = [exporter.scheduler.submit(target, deadline) for target in exporter.targets]
    for future in futures:
        future.result()
    exporter.stop()
    body = generate_latest(exporter.registry)
    if output is None:
        sys.stdout.buffer.write(body)
        sys.stdout.flush()
    else:
        write_atomically(output, body)
    failed = [t for t in exporter.targets if t.outcome is None or not t.outcome.up]
    for target in failed:
        log.error("target failed", extra={"account": target.account, "region": target.region})
    return 1 if failed else 0


def write_atomically(path: Path, body: bytes) -> None:
    """Write to a temporary file beside `path`, then rename it over `path`.

    A reader such as node_exporter's textfile collector sees the old file or the new one,
    never half of one.
    """
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(body)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
