"""Parse the command line and run the exporter, its config check, or the simulated API."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from exporter import __version__, logs
from exporter.allocator import pin_mmap_threshold
from exporter.app import Exporter
from exporter.config import load_config
from exporter.errors import ConfigError
from exporter.once import run_once
from exporter.web import HttpServer, make_app
from exporter.webconfig import load_web_config

DEFAULT_PORT = 10041
DEFAULT_LISTEN_ADDRESS = f":{DEFAULT_PORT}"
DEFAULT_CONFIG_FILE = "config.yml"
ENV_PREFIX = "BCC_IMAGE_EXPORTER_"

log = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> int:
    """Run the command; return the process exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["simulate"]:
        from exporter.simulator.cli import main as simulate

        return simulate(args[1:])
    options = _parser().parse_args(args)
    logs.configure(options.log_level, options.log_format)
    pin_mmap_threshold()
    try:
        config = load_config(options.config_file)
    except ConfigError as err:
        print(f"{options.config_file}: {err}", file=sys.stderr)
        return 1
    try:
        web_config = load_web_config(options.web_config_file) if options.web_config_file else None
    except ConfigError as err:
        print(f"{options.web_config_file}: {err}", file=sys.stderr)
        return 1
    if options.config_check:
        accounts = len(config.accounts)
        targets = sum(len(account.regions) for account in config.accounts)
        print(
            f"{options.config_file}: OK, {_plural(accounts, 'account')}, "
            f"{_plural(targets, 'target')}"
        )
        return 0
    if options.output is not None and not options.once:
        print("--output needs --once: it writes the metrics of a single refresh", file=sys.stderr)
        return 2
    if options.once:
        exporter = Exporter(config, options.config_file, process_metrics=False)
        try:
            return run_once(exporter, options.output)
        except OSError as err:
            print(f"cannot write {options.output}: {err.strerror}", file=sys.stderr)
            return 1
    try:
        host, port = parse_listen_address(options.listen_address)
    except ValueError as err:
        print(f"--web.listen-address: {err}", file=sys.stderr)
        return 2
    exporter = Exporter(config, options.config_file)
    app = make_app(exporter, lifecycle=options.enable_lifecycle)
    try:
        server = HttpServer(app, host, port, web_config=web_config)
    except OSError as err:
        print(f"cannot listen on {host}:{port}: {err.strerror}", file=sys.stderr)
        return 1
    except ConfigError as err:
        print(f"{options.web_config_file}: {err}", file=sys.stderr)
        return 1
    return _serve(exporter, server, f"{host}:{server.port}", options.config_file)


def parse_listen_address(address: str) -> tuple[str, int]:
    """Split `host:port`, `:port` (every interface) or `[v6]:port`."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected HOST:PORT such as :{DEFAULT_PORT} or 127.0.0.1:{DEFAULT_PORT}")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


def _serve(exporter: Exporter, server: HttpServer, address: str, config_file: str) -> int:
    wake = threading.Event()
    received: list[signal.Signals] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        received.append(signal.Signals(signum))
        wake.set()

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, on_signal)
    server.start()
    exporter.start()
    log.info(
        "exporter started",
        extra={
            "version": __version__,
            "address": address,
            "tls": server.tls,
            "config": config_file,
            "targets": len(exporter.targets),
            "mode": exporter.config.refresh.mode,
        },
    )
    while True:
        wake.wait()
        wake.clear()
        while received:
            signum = received.pop(0)
            if signum == signal.SIGHUP:
                exporter.try_reload()
                continue
            log.info("shutting down", extra={"signal": signum.name})
            server.stop()
            exporter.stop()
            log.info("exporter stopped")
            # Worker threads may sit in a request until its read timeout, and the interpreter
            # would wait for them at exit: leave now, as promised, once the logs are out.
            logging.shutdown()
            sys.stdout.flush()
            os._exit(0)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bcc-image-exporter",
        description="Export Baidu AI Cloud BCC image inventory as Prometheus metrics. "
        "`bcc-image-exporter simulate --help` runs the simulated BCC API.",
    )
    _flag(parser, "--config.file", "config_file", DEFAULT_CONFIG_FILE, "path of the YAML config")
    _flag(
        parser,
        "--web.listen-address",
        "listen_address",
        DEFAULT_LISTEN_ADDRESS,
        "address to serve /metrics on, HOST:PORT or :PORT",
    )
    _flag(parser, "--log.level", "log_level", "info", "one of " + ", ".join(logs.LOG_LEVELS))
    _flag(parser, "--log.format", "log_format", "logfmt", "one of " + ", ".join(logs.LOG_FORMATS))
    _flag(
        parser,
        "--web.config.file",
        "web_config_file",
        "",
        "web config (exporter-toolkit format) for TLS and basic auth; empty serves plain HTTP",
    )
    parser.add_argument(
        "--web.enable-lifecycle",
        dest="enable_lifecycle",
        action="store_true",
        help="allow POST /-/reload to reload the config file",
    )
    parser.add_argument(
        "--config.check",
        dest="config_check",
        action="store_true",
        help="validate the config file, print its problems, and exit",
    )
    parser.add_argument(
        "--once",
        action="store_true",
        help="refresh every target once, print the metrics and exit; 1 if any target failed",
    )
    parser.add_argument(
        "--output",
        type=Path,
        help="with --once: write the metrics to this file atomically (node_exporter textfile)",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def _flag(parser: argparse.ArgumentParser, flag: str, dest: str, default: str, text: str) -> None:
    env = ENV_PREFIX + dest.upper()
    choices = {"log_level": logs.LOG_LEVELS, "log_format": logs.LOG_FORMATS}.get(dest)
    parser.add_argument(
        flag,
        dest=dest,
        default=os.environ.get(env, default),
        choices=choices,
        help=f"{text} (env {env}; default {default or 'none'})",
    )


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
