"""Run simulators in a child process, so their CPU and memory are not the client's.

The parent sends a JSON spec on the first line of the child's stdin; the child answers with
the servers' URLs and serves until its stdin closes.
"""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import IO, Any

from exporter.simulator import Fault, SimulatedAccount, Simulator

Counts = Mapping[str, Mapping[str, int]]


@dataclass(frozen=True)
class Account:
    """Name one simulated account's keys and its image counts per region and type."""

    access_key_id: str
    secret_access_key: str
    images: Counts


@dataclass(frozen=True)
class ServerSpec:
    """Describe one simulator: its accounts, seed, added latency and TLS files."""

    accounts: Sequence[Account]
    seed: int = 1
    latency: float = 0.0
    tls: tuple[str, str] | None = None


class RemoteSimulators:
    """Start simulators in a child process and talk to it; a context manager."""

    def __init__(self, servers: Sequence[ServerSpec]) -> None:
        self._spec = [_encode(server) for server in servers]
        self._process: subprocess.Popen[str] | None = None
        self.urls: list[str] = []

    def __enter__(self) -> RemoteSimulators:
        process = subprocess.Popen(
            [sys.executable, "-m", "bench.simhost"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self._process = process
        self._send(json.dumps(self._spec))
        self.urls = json.loads(self._receive())
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        process = self._process
        if process is None:
            return
        if process.stdin is not None:
            process.stdin.close()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
        self._process = None

    def _send(self, line: str) -> None:
        stdin = self._pipes()[0]
        stdin.write(line + "\n")
        stdin.flush()

    def _receive(self) -> str:
        line = self._pipes()[1].readline()
        if not line:
            raise RuntimeError("the simulator process ended early; see its stderr above")
        return line

    def _pipes(self) -> tuple[IO[str], IO[str]]:
        process = self._process
        if process is None or process.stdin is None or process.stdout is None:
            raise RuntimeError("the simulator process is not running")
        return process.stdin, process.stdout


def _encode(server: ServerSpec) -> dict[str, Any]:
    return {
        "accounts": [
            [a.access_key_id, a.secret_access_key, {r: dict(c) for r, c in a.images.items()}]
            for a in server.accounts
        ],
        "seed": server.seed,
        "latency": server.latency,
        "tls": list(server.tls) if server.tls else None,
    }


def _start(spec: dict[str, Any]) -> Simulator:
    accounts = [SimulatedAccount(ak, sk, images=images) for ak, sk, images in spec["accounts"]]
    context = None
    if spec["tls"]:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(*spec["tls"])
    simulator = Simulator(accounts, seed=spec["seed"], ssl_context=context)
    if spec["latency"] > 0:
        simulator.add_fault(Fault("latency", delay=spec["latency"]))
    return simulator.start()


def main() -> None:
    """Serve the simulators described on stdin until stdin closes."""
    simulators = [_start(spec) for spec in json.loads(sys.stdin.readline())]
    try:
        print(json.dumps([s.url for s in simulators]), flush=True)
        for _ in sys.stdin:
            pass  # nothing to do but wait for the parent to close stdin
    finally:
        for simulator in simulators:
            simulator.stop()


if __name__ == "__main__":
    main()
