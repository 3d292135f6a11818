"""Run the simulated BCC API from the command line (`bcc-image-exporter simulate`)."""

from __future__ import annotations

import argparse
import ipaddress
import signal
import ssl
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from exporter import logs
from exporter.errors import ConfigError
from exporter.simulator.accounts import (
    DEMO_ACCESS_KEY_ID,
    DEMO_IMAGES,
    DEMO_SECRET_ACCESS_KEY,
    SimulatedAccount,
)
from exporter.simulator.dataset import count_problems
from exporter.simulator.faults import Fault
from exporter.simulator.scenario import Scenario, load_scenario
from exporter.simulator.server import Simulator

PROG = "bcc-image-exporter simulate"
DEFAULT_LISTEN = "127.0.0.1:8765"
DEFAULT_SEED = 1
WAIT_STEP_SECONDS = 0.2


class UsageError(ConfigError):
    """Report a bad flag or scenario; the command exits with status 2."""


def main(argv: list[str] | None = None) -> int:
    """Serve the simulated API until SIGTERM or SIGINT; return the exit status."""
    try:
        options = _parser().parse_args(argv)
    except SystemExit as exit_request:
        return exit_request.code if isinstance(exit_request.code, int) else 2
    logs.configure(options.log_level, options.log_format)
    try:
        host, port = _listen_address(options.listen, options.allow_remote)
        scenario = load_scenario(options.scenario) if options.scenario else Scenario()
        simulator = Simulator(
            _accounts(options, scenario),
            seed=options.seed if options.seed is not None else scenario.seed or DEFAULT_SEED,
            host=host,
            port=port,
            ssl_context=_tls_context(options.tls_cert, options.tls_key),
        )
        for fault in _faults(options, scenario):
            simulator.add_fault(fault)
    except ConfigError as err:
        _print_problems(options, err)
        return 2

    stop = threading.Event()
    restore = _catch_signals(stop)
    try:
        return _serve(simulator, options.listen, stop)
    finally:
        restore()


def parse_images(values: list[str]) -> dict[str, dict[str, int]]:
    """Parse repeated `REGION:TYPE=N[,TYPE=N]` values into counts per region."""
    images: dict[str, dict[str, int]] = {}
    for value in values:
        region, _, spec = value.partition(":")
        counts: dict[str, int] = {}
        for item in spec.split(","):
            kind, _, number = item.partition("=")
            if not region or not kind or not number.strip().isdigit():
                raise UsageError([f"--images {value!r}: expected REGION:TYPE=N[,TYPE=N]"])
            counts[kind.strip()] = int(number)
        problems = count_problems(counts)
        if problems:
            raise UsageError([f"--images {value!r}: {problem}" for problem in problems])
        images.setdefault(region.strip(), {}).update(counts)
    return images


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__)
    add = parser.add_argument
    add("--listen", default=DEFAULT_LISTEN, metavar="HOST:PORT", help="port 0 picks a free port")
    add("--allow-remote", action="store_true", help="allow a non-loopback --listen host")
    add("--seed", type=int, default=None, help=f"dataset seed (default {DEFAULT_SEED})")
    add("--access-key-id", default=DEMO_ACCESS_KEY_ID, help="the simulated account's key")
    add("--secret-access-key", default=DEMO_SECRET_ACCESS_KEY, help="its secret key")
    add("--security-token", default=None, help="require this x-bce-security-token")
    add("--images", action="append", default=[], metavar="REGION:TYPE=N[,TYPE=N]")
    add("--scenario", type=Path, default=None, metavar="FILE", help="YAML accounts and faults")
    add("--latency", type=float, default=0.0, metavar="SECONDS", help="delay every request")
    add("--tls-cert", type=Path, default=None, metavar="FILE", help="serve HTTPS: PEM certificate")
    add("--tls-key", type=Path, default=None, metavar="FILE", help="its PEM private key")
    add("--log-level", choices=logs.LOG_LEVELS, default="info")
    add("--log-format", choices=logs.LOG_FORMATS, default="logfmt")
    return parser


def _listen_address(value: str, allow_remote: bool) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit() or int(port) > 65535:
        raise UsageError([f"--listen {value!r}: expected HOST:PORT such as {DEFAULT_LISTEN}"])
    if not allow_remote and not _is_loopback(host):
        message = f"--listen {value!r}: {host} is not a loopback address"
        raise UsageError([f"{message}; use 127.0.0.1, or pass --allow-remote to expose it"])
    return host, int(port)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _tls_context(cert: Path | None, key: Path | None) -> ssl.SSLContext | None:
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise UsageError(["--tls-cert and --tls-key go together: give both, or neither"])
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as err:
        raise UsageError([f"--tls-cert {cert} --tls-key {key}: cannot load them: {err}"]) from err
    return context


def _accounts(options: argparse.Namespace, scenario: Scenario) -> list[SimulatedAccount]:
    images = parse_images(options.images)
    if scenario.accounts is not None:
        if images:
            raise UsageError(["--images cannot be combined with accounts in --scenario"])
        return scenario.accounts
    return [
        SimulatedAccount(
            options.access_key_id,
            options.secret_access_key,
            options.security_token,
            images or DEMO_IMAGES,
        )
    ]


def _faults(options: argparse.Namespace, scenario: Scenario) -> list[Fault]:
    if options.latency < 0:
        raise UsageError([f"--latency {options.latency:g}: seconds must be >= 0"])
    latency = [Fault("latency", delay=options.latency)] if options.latency > 0 else []
    return latency + scenario.faults


def _print_problems(options: argparse.Namespace, err: ConfigError) -> None:
    if not isinstance(err, UsageError) and options.scenario:
        print(f"{PROG}: error: scenario {options.scenario} is invalid:", file=sys.stderr)
        for problem in err.problems:
            print(f"  - {problem}", file=sys.stderr)
        print("fix the file; docs/simulator.md describes its format", file=sys.stderr)
        return
    for problem in err.problems:
        print(f"{PROG}: error: {problem}", file=sys.stderr)


def _serve(simulator: Simulator, listen: str, stop: threading.Event) -> int:
    try:
        simulator.start()
    except OSError as err:
        print(f"{PROG}: cannot listen on {listen}: {err}", file=sys.stderr)
        return 1
    try:
        names = ",".join(simulator.account_map())
        print(f"simulator ready: endpoint={simulator.endpoint} access_key_ids={names}", flush=True)
        while not stop.wait(WAIT_STEP_SECONDS):
            pass
    finally:
        simulator.stop()
    return 0


def _catch_signals(stop: threading.Event) -> Callable[[], None]:
    """Set `stop` on SIGTERM or SIGINT; return a function that restores the old handlers."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None  # Signals reach only the main thread; elsewhere serve until exit.

    def _stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGTERM, signal.SIGINT)}

    def _restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    return _restore


if __name__ == "__main__":
    sys.exit(main())
