"""Section 5: peak resident memory of the exporter as the number of images grows.

Each size runs the real command line in a fresh process, whose peak resident set (VmHWM) is
read once its first refresh has ended (`/readyz` answers 200); the simulator runs in yet
another process. Per-image series (`image_info`) are off, as by default.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from bench.harness import LOOPBACK, REGIONS, Key, keys, median
from bench.plan import Plan, large_region
from bench.simhost import Account, RemoteSimulators, ServerSpec
from bench.table import Row, mebibytes

SECTION = 5
ALLOWED_GROWTH_KIB = 10 * 1024
READY_TIMEOUT_SECONDS = 300
POLL_SECONDS = 0.1


def run(plan: Plan) -> list[Row]:
    """Measure the peak at each size; the smallest size is the baseline of the others."""
    (key,) = keys(1)
    regions = dict(zip(REGIONS, plan.memory_sizes, strict=False))
    images = {region: large_region(size) for region, size in regions.items()}
    spec = ServerSpec([Account(key.access_key_id, key.secret_access_key, images)])
    peaks: dict[str, list[float]] = {region: [] for region in regions}
    with RemoteSimulators([spec]) as remote, tempfile.TemporaryDirectory() as folder:
        (url,) = remote.urls
        for _ in range(plan.repeats):
            for region in regions:
                peaks[region].append(_peak_in_child(url, key, region, Path(folder)))
    smallest, *_ = regions
    baseline = median(peaks[smallest])
    rows = []
    for region, size in regions.items():
        peak = median(peaks[region])
        growth = peak - baseline
        rows.append(
            Row(
                SECTION,
                f"peak resident memory, {size:,} images in one target ({growth / 1024:+.1f} MiB)",
                plan.repeats,
                mebibytes(peak),
                mebibytes(baseline),
                peak / baseline,
                f"<= {mebibytes(baseline + ALLOWED_GROWTH_KIB)}",
                growth <= ALLOWED_GROWTH_KIB,
            )
        )
    return rows


def _peak_in_child(url: str, key: Key, region: str, folder: Path) -> float:
    config = folder / f"{region}.yml"
    config.write_text(
        json.dumps(  # JSON is YAML
            {
                "accounts": [
                    {
                        "name": "acct",
                        "access_key_id": key.access_key_id,
                        "secret_access_key": key.secret_access_key,
                        "regions": [region],
                        "endpoint": f"{url}/{{region}}",
                    }
                ],
                "image_info": {"enabled": False},
            }
        )
    )
    port = _free_port()
    command = [
        sys.executable,
        "-m",
        "exporter",
        f"--config.file={config}",
        f"--web.listen-address={LOOPBACK}:{port}",
        "--log.level=warn",
    ]
    with subprocess.Popen(command) as process:
        try:
            _wait_ready(f"http://{LOOPBACK}:{port}/readyz", process)
            return _peak_kib(process.pid)
        finally:
            process.terminate()
            process.wait(timeout=20)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


def _wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the exporter exited with status {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass  # not listening yet, or 503 until the first refresh ends
        time.sleep(POLL_SECONDS)
    raise RuntimeError(f"the exporter was not ready within {READY_TIMEOUT_SECONDS} s")


def _peak_kib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return float(line.split()[1])
    raise RuntimeError("/proc/PID/status has no VmHWM line; the memory section needs Linux")
