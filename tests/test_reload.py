"""Rotate secrets and reload the configuration without restarting the exporter."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests
import yaml

from exporter.app import Exporter
from exporter.config import load_config
from exporter.simulator import SimulatedAccount, Simulator
from tests.conftest import AK, SK, image_counts, parse_samples, refresh_all, scrape, value
from tests.test_cli import _free_port, _wait_ready


def _config_file(tmp_path: Path, sim: Simulator, regions: list[str], **account: object) -> Path:
    data = {
        "accounts": [
            {
                "name": "test",
                "access_key_id": AK,
                "secret_access_key": SK,
                "regions": regions,
                "endpoint": sim.endpoint,
                **account,
            }
        ]
    }
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_rotated_secret_file_takes_effect_without_a_restart(tmp_path: Path) -> None:
    secret = tmp_path / "sk"
    secret.write_text("old-secret\n")
    account = SimulatedAccount(AK, "old-secret", images={"bj": {"Custom": 2}})
    with Simulator([account]) as sim:
        path = _config_file(tmp_path, sim, ["bj"], secret_access_key_file="sk")
        data = yaml.safe_load(path.read_text())
        del data["accounts"][0]["secret_access_key"]
        path.write_text(yaml.safe_dump(data))
        exporter = Exporter(load_config(path))
        refresh_all(exporter)
        assert exporter.targets[0].outcome is not None and exporter.targets[0].outcome.up

        sim.stop()
        rotated = SimulatedAccount(AK, "new-secret", images={"bj": {"Custom": 2}})
        with Simulator([rotated], port=sim.port) as sim2:
            refresh_all(exporter)
            assert not exporter.targets[0].outcome.up, "the old secret is refused"
            secret.write_text("new-secret\n")
            os.utime(secret, ns=(time.time_ns(), time.time_ns() + 1_000_000))
            refresh_all(exporter)
            assert exporter.targets[0].outcome.up, "the new secret is used"
            assert sim2.requests[-1].status == 200


def test_reload_switches_targets_and_keeps_data_of_those_that_stay(
    tmp_path: Path, simulator: Simulator
) -> None:
    path = _config_file(tmp_path, simulator, ["bj"])
    exporter = Exporter(load_config(path), path)
    refresh_all(exporter)
    before = image_counts(scrape(exporter), "bj")

    _config_file(tmp_path, simulator, ["bj", "gz"])
    assert exporter.try_reload() == []
    samples = scrape(exporter)

    assert image_counts(samples, "bj") == before, "bj keeps its data across the reload"
    assert [t.region for t in exporter.targets] == ["bj", "gz"]
    refresh_all(exporter)
    assert image_counts(scrape(exporter), "gz")


def test_an_invalid_reload_keeps_the_old_configuration(
    tmp_path: Path, simulator: Simulator
) -> None:
    path = _config_file(tmp_path, simulator, ["bj"])
    exporter = Exporter(load_config(path), path)
    refresh_all(exporter)

    path.write_text("accounts: []\nrefresh: {mode: never}\n")
    problems = exporter.try_reload()

    assert any(p.startswith("accounts:") for p in problems)
    assert any(p.startswith("refresh.mode:") for p in problems)
    assert [t.region for t in exporter.targets] == ["bj"]
    assert value(scrape(exporter), "bce_bcc_up", account="test", region="bj") == 1


def test_sighup_reloads_the_running_exporter(tmp_path: Path, simulator: Simulator) -> None:
    path = _config_file(tmp_path, simulator, ["bj"])
    port = _free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "exporter",
            f"--config.file={path}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url)
        path.write_text("accounts: nope\n")
        process.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        _config_file(tmp_path, simulator, ["bj", "gz"])
        process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            samples = parse_samples(requests.get(f"{url}/metrics", timeout=5).text)
            if image_counts(samples, "gz"):
                break
            time.sleep(0.2)
        assert image_counts(samples, "gz"), "gz appears after the second SIGHUP"
    finally:
        process.send_signal(signal.SIGTERM)
        _, logs = process.communicate(timeout=5)
    assert "reload failed" in logs and "accounts: must be a non-empty list" in logs
    assert "configuration reloaded" in logs


def test_reload_over_http_needs_the_lifecycle_flag(tmp_path: Path, simulator: Simulator) -> None:
    from exporter.web import HttpServer, make_app

    path = _config_file(tmp_path, simulator, ["bj"])
    exporter = Exporter(load_config(path), path)
    servers = [
        HttpServer(make_app(exporter, lifecycle=on), "127.0.0.1", 0) for on in (False, True)
    ]
    for server in servers:
        server.start()
    try:
        off, on = (f"http://127.0.0.1:{s.port}/-/reload" for s in servers)
        refused = requests.post(off, timeout=5)
        accepted = requests.post(on, timeout=5)
    finally:
        for server in servers:
            server.stop()
    assert refused.status_code == 403 and "--web.enable-lifecycle" in refused.text
    assert accepted.status_code == 200


def test_targets_kept_by_a_reload_stay_on_their_schedule(
    tmp_path: Path, simulator: Simulator
) -> None:
    path = _config_file(tmp_path, simulator, ["bj"])
    exporter = Exporter(load_config(path), path)
    refresh_all(exporter)
    exporter.start()
    try:
        time.sleep(0.3)
        simulator.clear_requests()
        _config_file(tmp_path, simulator, ["bj", "gz"])
        assert exporter.try_reload() == []
        time.sleep(1.0)
        regions = {r.region for r in simulator.requests}
    finally:
        exporter.stop()
    assert regions == {"gz"}, "only the new target is refreshed at once"


def test_a_bad_web_config_is_reported_and_fails(tmp_path: Path, simulator: Simulator) -> None:
    path = _config_file(tmp_path, simulator, ["bj"])
    web = tmp_path / "web.yml"
    web.write_text("tls_server_config: {cert_file: missing.crt}\nbasic_auth_users: {a: nothash}\n")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "exporter",
            f"--config.file={path}",
            f"--web.config.file={web}",
            "--config.check",
        ],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert result.returncode == 1
    assert "tls_server_config" in result.stderr and "basic_auth_users" in result.stderr


def test_a_reload_releases_a_scrape_waiting_on_queued_refreshes(
    tmp_path: Path, simulator: Simulator
) -> None:
    import threading

    from exporter.simulator import Fault

    simulator.add_fault(Fault("latency", delay=1.0))
    path = tmp_path / "config.yml"
    data = yaml.safe_load(_config_file(tmp_path, simulator, ["bj", "gz", "su"]).read_text())
    data["refresh"] = {"mode": "scrape", "concurrency": 1}
    path.write_text(yaml.safe_dump(data))
    exporter = Exporter(load_config(path), path)
    took: list[float] = []

    def scrape_once() -> None:
        started = time.monotonic()
        exporter.before_scrape(10.0)
        took.append(time.monotonic() - started)

    thread = threading.Thread(target=scrape_once)
    thread.start()
    time.sleep(0.3)
    assert exporter.try_reload() == []
    thread.join(timeout=15)

    assert took and took[0] < 2.0, "the scrape returned soon after the reload, not at 10 s"


def test_a_reload_that_changes_the_labels_refreshes_kept_targets_at_once(
    tmp_path: Path, simulator: Simulator
) -> None:
    path = _config_file(tmp_path, simulator, ["bj"])
    exporter = Exporter(load_config(path), path)
    refresh_all(exporter)
    exporter.start()
    try:
        data = yaml.safe_load(path.read_text())
        data["labels"] = ["image_type"]
        path.write_text(yaml.safe_dump(data))
        simulator.clear_requests()
        assert exporter.try_reload() == []
        deadline = time.monotonic() + 5
        while not image_counts(scrape(exporter), "bj") and time.monotonic() < deadline:
            time.sleep(0.1)
        samples = scrape(exporter)
    finally:
        exporter.stop()
    assert image_counts(samples, "bj"), "counts in the new shape arrive without waiting"
    assert {label for key in image_counts(samples, "bj") for label, _ in key} == {"image_type"}


def test_a_removed_target_stops_calling_the_api_after_a_reload(
    tmp_path: Path, simulator: Simulator
) -> None:
    from exporter.simulator import Fault

    simulator.set_images(AK, "gz", {"System": 5000})
    simulator.add_fault(Fault("latency", region="gz", delay=0.3))
    path = _config_file(tmp_path, simulator, ["bj", "gz"])
    data = yaml.safe_load(path.read_text())
    data["page_size"] = 100
    path.write_text(yaml.safe_dump(data))
    exporter = Exporter(load_config(path), path)
    exporter.start()
    try:
        time.sleep(0.5)
        data["accounts"][0]["regions"] = ["bj"]
        path.write_text(yaml.safe_dump(data))
        assert exporter.try_reload() == []
        time.sleep(0.7)
        simulator.clear_requests()
        time.sleep(1.0)
        late = [r for r in simulator.requests if r.region == "gz"]
    finally:
        exporter.stop()
    assert late == [], "the abandoned listing of gz went on calling the API"


def test_a_scheduler_stopped_by_a_reload_refuses_new_refreshes_quietly(
    tmp_path: Path, simulator: Simulator
) -> None:
    path = _config_file(tmp_path, simulator, ["bj"])
    exporter = Exporter(load_config(path), path)
    old = exporter.scheduler
    assert exporter.try_reload() == []
    simulator.clear_requests()

    future = old.submit(old.targets[0], time.monotonic() + 5)
    old.refresh_due(None)

    assert future.done() and future.result() is None
    assert simulator.requests == []
